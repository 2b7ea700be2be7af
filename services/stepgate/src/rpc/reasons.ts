import { Code } from "@connectrpc/connect";
import type { SentReason } from "../domain/stepgate-error.ts";

/**
 * The one list of reasons the service sends and the gRPC status of each. Typed against the
 * proto's `ErrorReason` enum: a reason added there and missing here fails the typecheck, and a
 * test checks the table in docs/errors.md against this list.
 */
export const reasonStatus: Record<SentReason, Code> = {
  // A wrong or reused credential: the caller is not allowed to proceed.
  WRONG_CODE: Code.PermissionDenied,
  CODE_REPLAYED: Code.PermissionDenied,
  CHALLENGE_MISMATCH: Code.PermissionDenied,
  GRANT_INVALID: Code.PermissionDenied,
  GRANT_EXPIRED: Code.PermissionDenied,
  GRANT_REVOKED: Code.PermissionDenied,
  GRANT_CONSUMED: Code.PermissionDenied,
  GRANT_MISMATCH: Code.PermissionDenied,
  GRANT_REQUIRED: Code.PermissionDenied,
  CALLER_NOT_ALLOWED: Code.PermissionDenied,
  OPERATOR_NOT_ALLOWED: Code.PermissionDenied,
  SUBJECT_PROOF_MISMATCH: Code.PermissionDenied,
  PASSKEY_REFUSED: Code.PermissionDenied,
  TRANSACTION_MISMATCH: Code.PermissionDenied,
  // The system is not in the state the call needs; retrying the same call will not help.
  CHALLENGE_EXPIRED: Code.FailedPrecondition,
  CHALLENGE_USED: Code.FailedPrecondition,
  METHOD_NOT_ALLOWED: Code.FailedPrecondition,
  IDEMPOTENCY_KEY_REUSED: Code.FailedPrecondition,
  FACTOR_STATE: Code.FailedPrecondition,
  FACTOR_REMOVED: Code.FailedPrecondition,
  SESSION_ENDED: Code.FailedPrecondition,
  TRANSACTION_REQUIRED: Code.FailedPrecondition,
  RESEAL_RUNNING: Code.FailedPrecondition,
  // Limits: RetryInfo says when, where a wait helps.
  CHALLENGE_LOCKED: Code.ResourceExhausted,
  SUBJECT_LOCKED: Code.ResourceExhausted,
  RATE_LIMITED: Code.ResourceExhausted,
  // Not a WebAuthn response at all: the request is wrong, whatever the state.
  PASSKEY_MALFORMED: Code.InvalidArgument,
  TRANSACTION_INVALID: Code.InvalidArgument,
  CHALLENGE_NOT_FOUND: Code.NotFound,
  UNKNOWN_ACTION: Code.NotFound,
  FACTOR_NOT_FOUND: Code.NotFound,
  // Who is calling is part of every binding: without it nothing can be decided.
  CALLER_REQUIRED: Code.Unauthenticated,
  CALLER_UNKNOWN: Code.Unauthenticated,
  // The user's presence is not proven as the policy requires.
  SUBJECT_PROOF_REQUIRED: Code.Unauthenticated,
  SUBJECT_PROOF_INVALID: Code.Unauthenticated,
  SUBJECT_PROOF_STALE: Code.Unauthenticated,
  // A store did not answer, or is known down: another replica, or the same one a moment later, may.
  STORE_UNAVAILABLE: Code.Unavailable,
  DEPENDENCY_UNAVAILABLE: Code.Unavailable,
  // Shed by admission control before it started: another replica, or this one shortly, may serve it.
  OVERLOADED: Code.Unavailable,
};
