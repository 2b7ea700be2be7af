import { type Reason, StepgateError } from "../domain/stepgate-error.ts";

type Entry =
  | { state: "done"; fingerprint: string; sealed: string }
  | {
      state: "failed";
      fingerprint: string;
      reason: Reason;
      message: string;
      metadata: Record<string, string>;
    };

/** Where one idempotency key's result is recorded. */
export interface ResultSlot {
  /** What is recorded (null: nothing yet). */
  read(): Promise<string | null>;
  /** Records `entry` unless something is recorded already; true if this call recorded it. */
  record(entry: string): Promise<boolean>;
}

export interface IdempotentCall<T> {
  slot: ResultSlot;
  /** What the slot held when the caller read it already (null: nothing); read from the slot when absent. */
  recorded?: string | null;
  /** A keyed hash of the request: the same key with another request fails with IDEMPOTENCY_KEY_REUSED. */
  fingerprint: string;
  run: () => Promise<T>;
  /** Seals a stored result (it may hold a grant: a bearer token must not rest in clear). */
  seal: (value: T) => string;
  open: (sealed: string) => T;
}

/**
 * Gives every call with one key the first recorded result or failure. There is no "in progress"
 * lock: a retry whose first attempt died with its replica must not wait for it. Two attempts that
 * overlap both run (the proof's claim lets the same key through twice) and the first to record
 * its result wins; the other returns that result. Infrastructure errors and failures with a
 * retry time (a lockout that will lift) are not recorded: a retry runs again.
 */
export async function runOnce<T>(call: IdempotentCall<T>): Promise<T> {
  const recorded = call.recorded === undefined ? await call.slot.read() : call.recorded;
  if (recorded !== null) return replay(call, recorded);
  let entry: Entry;
  let value: T | undefined;
  try {
    value = await call.run();
    entry = { state: "done", fingerprint: call.fingerprint, sealed: call.seal(value) };
  } catch (error) {
    if (!(error instanceof StepgateError) || error.retryAfterMs !== undefined) throw error;
    entry = {
      state: "failed",
      fingerprint: call.fingerprint,
      reason: error.reason,
      message: error.message,
      metadata: error.metadata,
    };
  }
  if (await call.slot.record(JSON.stringify(entry))) {
    return value === undefined ? replay(call, JSON.stringify(entry)) : value;
  }
  // An overlapping attempt recorded first: everyone gets its answer.
  return replay(call, (await call.slot.read()) ?? JSON.stringify(entry));
}

/** The sealed result a recorded entry holds (base64), or undefined for a recorded failure. */
export function sealedResultOf(recorded: string): string | undefined {
  const entry = JSON.parse(recorded) as Entry;
  return entry.state === "done" ? entry.sealed : undefined;
}

/** The recorded entry with its sealed result replaced by `sealed` (e.g. sealed again under a new key). */
export function withSealedResult(recorded: string, sealed: string): string {
  return JSON.stringify({ ...(JSON.parse(recorded) as Entry), sealed });
}

function replay<T>(call: IdempotentCall<T>, raw: string): T {
  const entry = JSON.parse(raw) as Entry;
  if (entry.fingerprint !== call.fingerprint) {
    throw new StepgateError("IDEMPOTENCY_KEY_REUSED", "idempotency key was used with a different request");
  }
  if (entry.state === "done") return call.open(entry.sealed);
  throw new StepgateError(entry.reason, entry.message, { metadata: entry.metadata });
}
