import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { errorDomain } from "@stepgate/api";
import { ErrorInfoSchema, RetryInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { type SentReason, StepgateError } from "../domain/stepgate-error.ts";
import { reasonStatus } from "./reasons.ts";

/** Builds the gRPC error for a reason, with an ErrorInfo and, when given, a RetryInfo. */
export function reasonError(
  reason: SentReason,
  message: string,
  metadata: Record<string, string> = {},
  retryAfterMs?: number,
): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { reason, domain: errorDomain, metadata } },
  ];
  if (retryAfterMs !== undefined) {
    details.push({ desc: RetryInfoSchema, value: { retryDelay: durationFromMs(Math.max(0, retryAfterMs)) } });
  }
  return new ConnectError(message, reasonStatus[reason], undefined, details);
}

/** The gRPC error for a domain failure. */
export function fromStepgateError(error: StepgateError): ConnectError {
  return reasonError(error.reason, error.message, error.metadata, error.retryAfterMs);
}

/** Maps what a domain function threw to what the caller sees; anything else passes through as INTERNAL. */
export function toRpcError(error: unknown): unknown {
  if (error instanceof ConnectError) return error;
  if (error instanceof StepgateError) return fromStepgateError(error);
  // A store is down or slow: UNAVAILABLE makes clients retry, ideally on another replica.
  if (error instanceof DependencyUnavailableError) {
    const message =
      error.reason === "DEPENDENCY_UNAVAILABLE"
        ? `${error.dependency} is unavailable; retry later`
        : `${error.dependency} did not answer; retry`;
    return reasonError(error.reason, message, { dependency: error.dependency }, error.retryAfterMs);
  }
  return error;
}
