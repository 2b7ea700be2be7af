import type { ErrorReason } from "@stepgate/api";

/**
 * Every reason the service sends, named as in the proto's `ErrorReason` enum (without its
 * `ERROR_REASON_` prefix). `IN_PROGRESS` is reserved and never sent.
 */
export type SentReason = Exclude<keyof typeof ErrorReason, "UNSPECIFIED" | "IN_PROGRESS">;

/**
 * The reasons domain code fails with; the RPC layer adds CALLER_REQUIRED, and STORE_UNAVAILABLE or
 * DEPENDENCY_UNAVAILABLE for a DependencyUnavailableError.
 */
export type Reason = Exclude<SentReason, "CALLER_REQUIRED" | "STORE_UNAVAILABLE" | "DEPENDENCY_UNAVAILABLE">;

export interface StepgateErrorInit {
  /** Non-secret facts for the caller, e.g. attempts_remaining. */
  metadata?: Record<string, string>;
  /** When the caller may try again, in ms. */
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
