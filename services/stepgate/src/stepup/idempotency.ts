import { type Reason, StepgateError } from "../domain/stepgate-error.ts";
import type { HotStore } from "../store/hot-store.ts";

type Entry =
  | { state: "done"; fingerprint: string; sealed: string }
  | {
      state: "failed";
      fingerprint: string;
      reason: Reason;
      message: string;
      metadata: Record<string, string>;
    };

export interface IdempotentCall<T> {
  key: string;
  /** What is recorded under `key`, when the caller read it already (null: nothing). */
  recorded?: string | null;
  /** A keyed hash of the request: the same key with another request is refused. */
  fingerprint: string;
  ttlMs: number;
  run: () => Promise<T>;
  /** Seals a stored result (it may hold a grant: a bearer token must not rest in clear). */
  seal: (value: T) => string;
  open: (sealed: string) => T;
}

/**
 * Gives every call with one key the first recorded result or failure. There is no "in progress"
 * lock: a retry whose first attempt died with its replica must not wait for it. Two attempts that
 * overlap both run (the proof's claim lets the same key through twice) and the first to record
 * its result wins; the other returns that result. Infrastructure errors are not recorded.
 */
export async function runOnce<T>(hot: HotStore, call: IdempotentCall<T>): Promise<T> {
  const recorded = call.recorded === undefined ? await hot.get(call.key) : call.recorded;
  if (recorded !== null) return replay(call, recorded);
  let entry: Entry;
  let value: T | undefined;
  try {
    value = await call.run();
    entry = { state: "done", fingerprint: call.fingerprint, sealed: call.seal(value) };
  } catch (error) {
    // Nothing was decided (a store failed, or a lockout that will lift): a retry runs again.
    if (!(error instanceof StepgateError) || error.retryAfterMs !== undefined) throw error;
    entry = {
      state: "failed",
      fingerprint: call.fingerprint,
      reason: error.reason,
      message: error.message,
      metadata: error.metadata,
    };
  }
  if (await hot.setIfAbsent(call.key, JSON.stringify(entry), call.ttlMs)) {
    return value === undefined ? replay(call, JSON.stringify(entry)) : value;
  }
  // An overlapping attempt recorded first: everyone gets its answer.
  return replay(call, (await hot.get(call.key)) ?? JSON.stringify(entry));
}

function replay<T>(call: IdempotentCall<T>, raw: string): T {
  const entry = JSON.parse(raw) as Entry;
  if (entry.fingerprint !== call.fingerprint) {
    throw new StepgateError("IDEMPOTENCY_KEY_REUSED", "idempotency key was used with a different request");
  }
  if (entry.state === "done") return call.open(entry.sealed);
  throw new StepgateError(entry.reason, entry.message, { metadata: entry.metadata });
}
