import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import { errorDomain } from "@stepgate/api";
import { ErrorInfoSchema, RetryInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
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

const unavailableCodes = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "ENOTFOUND",
  "57P01",
  "57P02",
  "57P03",
]);
const unavailableNames = new Set(["ConnectionException", "MaxRetriesPerRequestError"]);
const unavailableMessages =
  /connection is closed|connection terminated|stream isn't writeable|connect ECONNREFUSED/i;

/** True for errors that mean PostgreSQL or Redis did not answer (worth a retry elsewhere). */
export function isStoreUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = String((e as { code?: unknown }).code ?? "");
    if (unavailableCodes.has(code) || code.startsWith("08")) return true;
    if (unavailableNames.has(e.name) || unavailableMessages.test(e.message)) return true;
  }
  return false;
}

/** Maps what a domain function threw to what the caller sees; anything else passes through as INTERNAL. */
export function toRpcError(error: unknown): unknown {
  if (error instanceof ConnectError) return error;
  if (error instanceof StepgateError) return fromStepgateError(error);
  // The store is down: UNAVAILABLE makes clients retry, ideally on another replica.
  if (isStoreUnavailable(error)) {
    return reasonError("STORE_UNAVAILABLE", "a store is not answering; retry", {}, 1000);
  }
  return error;
}
