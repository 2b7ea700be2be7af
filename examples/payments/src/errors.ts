import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { GrantError } from "@stepgate/client";

/**
 * The JSON body of every failed API call: what the page shows and a log line may carry. A
 * STEP_UP_REQUIRED answer (HTTP 401) adds the step-up to answer: `action`, `acrValues`, `maxAge`,
 * `grantRefusal` and `challenge` (or `enrollmentRequired`), as the README describes.
 */
export interface ErrorBody {
  [field: string]: unknown;
  /** Stepgate's ErrorInfo reason (e.g. `PASSKEY_REFUSED`), else its gRPC code's name (`INVALID_ARGUMENT`
   * for a request rule), a `GrantError` reason, or this server's own (`BAD_REQUEST`, `NOT_FOUND`,
   * `UNKNOWN_CHALLENGE`, `ENROLLMENT_REQUIRED`, `PASSKEY_NOT_OFFERED`, `INTERNAL`). */
  error: string;
  /** For `PASSKEY_REFUSED`: why, e.g. `user_verification_missing`. */
  refusal?: string;
  /** A short human-readable message, never a token or a credential. */
  message: string;
}

/** An error this server answers with on purpose, with its HTTP status. */
export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;

  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
  }
}

// gRPC codes as the HTTP statuses a browser client understands.
const httpStatus: Partial<Record<Code, number>> = {
  [Code.InvalidArgument]: 400,
  [Code.Unauthenticated]: 401,
  [Code.PermissionDenied]: 403,
  [Code.NotFound]: 404,
  [Code.AlreadyExists]: 409,
  [Code.FailedPrecondition]: 409,
  [Code.Aborted]: 409,
  [Code.ResourceExhausted]: 429,
  [Code.Unavailable]: 503,
  [Code.DeadlineExceeded]: 504,
};

/**
 * The HTTP status and JSON body for anything a handler threw: an `ApiError` as it is, a Stepgate
 * `ConnectError` by its ErrorInfo (reason and `refusal` metadata; status from its gRPC code, 502 for
 * codes a browser cannot act on), a `GrantError` (a grant that failed the offline check) as 502, and
 * anything else as 500 `INTERNAL` without its message. Never throws.
 */
export function toErrorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof ApiError) return { status: error.status, body: error.body };
  if (error instanceof GrantError) {
    return { status: 502, body: { error: error.reason, message: "the grant failed the offline check" } };
  }
  if (error instanceof ConnectError) {
    const info = error.findDetails(ErrorInfoSchema)[0];
    const refusal = info?.metadata.refusal;
    return {
      status: httpStatus[error.code] ?? 502,
      body: {
        // No ErrorInfo (e.g. a request rule's BadRequest): the gRPC code's canonical name, INVALID_ARGUMENT.
        error: info?.reason ?? Code[error.code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase(),
        ...(refusal ? { refusal } : {}),
        message: error.rawMessage,
      },
    };
  }
  return { status: 500, body: { error: "INTERNAL", message: "internal error" } };
}
