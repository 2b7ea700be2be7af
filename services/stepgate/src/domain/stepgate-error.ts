/** Machine-readable failure reasons; the RPC layer maps each to a gRPC status (see rpc/errors.ts). */
export type Reason =
  | "WRONG_CODE"
  | "CODE_REPLAYED"
  | "CHALLENGE_EXPIRED"
  | "CHALLENGE_LOCKED"
  | "SUBJECT_LOCKED"
  | "CHALLENGE_USED"
  | "CHALLENGE_NOT_FOUND"
  | "CHALLENGE_MISMATCH"
  | "METHOD_NOT_ALLOWED"
  | "IDEMPOTENCY_KEY_REUSED"
  | "GRANT_INVALID"
  | "GRANT_EXPIRED"
  | "GRANT_REVOKED"
  | "GRANT_CONSUMED"
  | "GRANT_MISMATCH"
  | "GRANT_REQUIRED"
  | "UNKNOWN_ACTION"
  | "FACTOR_NOT_FOUND"
  | "FACTOR_STATE";

export interface StepgateErrorInit {
  /** Non-secret facts for the caller, e.g. attempts_remaining. */
  metadata?: Record<string, string>;
  /** When the caller may try again. */
  retryAfterMs?: number;
}

/** A failure the caller can act on. Messages are short, lowercase and never hold a secret. */
export class StepgateError extends Error {
  override name = "StepgateError";
  readonly reason: Reason;
  readonly metadata: Record<string, string>;
  readonly retryAfterMs: number | undefined;

  constructor(reason: Reason, message: string, init: StepgateErrorInit = {}) {
    super(message);
    this.reason = reason;
    this.metadata = init.metadata ?? {};
    this.retryAfterMs = init.retryAfterMs;
  }
}

/** Throws a StepgateError unless `condition` holds; keeps domain functions flat. */
export function assertThat(
  condition: unknown,
  reason: Reason,
  message: string,
  init?: StepgateErrorInit,
): asserts condition {
  if (!condition) throw new StepgateError(reason, message, init);
}
