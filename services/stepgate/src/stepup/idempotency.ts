import { setTimeout as sleep } from "node:timers/promises";
import { type Reason, StepgateError } from "../domain/stepgate-error.ts";
import type { HotStore } from "../store/hot-store.ts";

type Entry =
  | { state: "pending"; fingerprint: string }
  | { state: "done"; fingerprint: string; sealed: string }
  | {
      state: "failed";
      fingerprint: string;
      reason: Reason;
      message: string;
      metadata: Record<string, string>;
    };

// A replica that dies mid-call leaves a pending entry; it lapses after this long.
const pendingTtlMs = 15_000;
const waitForOtherMs = 2_000;
const pollMs = 25;

export interface IdempotentCall<T> {
  key: string;
  /** A keyed hash of the request: the same key with another request is refused. */
  fingerprint: string;
  ttlMs: number;
  run: () => Promise<T>;
  /** Seals a stored result (it may hold a grant: a bearer token must not rest in clear). */
  seal: (value: T) => string;
  open: (sealed: string) => T;
}

/**
 * Runs `run` once per key: later calls with the key get the first call's result or failure.
 * Infrastructure errors are not remembered, so a retry after them runs again.
 */
export async function runOnce<T>(hot: HotStore, call: IdempotentCall<T>): Promise<T> {
  const deadline = Date.now() + waitForOtherMs;
  const pending: Entry = { state: "pending", fingerprint: call.fingerprint };
  while (!(await hot.setIfAbsent(call.key, JSON.stringify(pending), pendingTtlMs))) {
    const raw = await hot.get(call.key);
    if (raw === null) continue;
    const entry = JSON.parse(raw) as Entry;
    if (entry.fingerprint !== call.fingerprint) {
      throw new StepgateError("IDEMPOTENCY_KEY_REUSED", "idempotency key was used with a different request");
    }
    if (entry.state === "done") return call.open(entry.sealed);
    if (entry.state === "failed")
      throw new StepgateError(entry.reason, entry.message, { metadata: entry.metadata });
    if (Date.now() >= deadline)
      throw new StepgateError("IN_PROGRESS", "a call with this idempotency key is in progress");
    await sleep(pollMs);
  }
  try {
    const value = await call.run();
    const done: Entry = { state: "done", fingerprint: call.fingerprint, sealed: call.seal(value) };
    await hot.set(call.key, JSON.stringify(done), call.ttlMs);
    return value;
  } catch (error) {
    if (error instanceof StepgateError && error.retryAfterMs === undefined) {
      const failed: Entry = {
        state: "failed",
        fingerprint: call.fingerprint,
        reason: error.reason,
        message: error.message,
        metadata: error.metadata,
      };
      await hot.set(call.key, JSON.stringify(failed), call.ttlMs);
    } else {
      // Nothing was decided (a store failed, or a lockout that will lift): let a retry run again.
      await hot.delete(call.key).catch(() => {});
    }
    throw error;
  }
}
