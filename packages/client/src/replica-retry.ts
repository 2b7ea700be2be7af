import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorDomain, replicaTrailer } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import type { ResendThrottle } from "./resend-throttle.ts";

// A replica answered that one of its stores could not serve the call: nothing was decided there.
const replicaCouldNotServe = new Set(["STORE_UNAVAILABLE", "DEPENDENCY_UNAVAILABLE"]);

/** Why a failed call is sent again (`resendReason`). */
export type ResendReason = "replica-unavailable" | "lost-in-transport";

/**
 * True when a Stepgate replica answered UNAVAILABLE because a store it depends on could not serve
 * the call (ErrorInfo reason STORE_UNAVAILABLE or DEPENDENCY_UNAVAILABLE). Nothing was decided, so
 * the call is safe to send again; another replica may have what this one lacks.
 */
export function isReplicaUnavailable(error: unknown): boolean {
  if (!(error instanceof ConnectError) || error.code !== Code.Unavailable) return false;
  return stepgateReasons(error).some((reason) => replicaCouldNotServe.has(reason));
}

/**
 * True when a call failed with no answer from any replica: a gRPC status of UNAVAILABLE or INTERNAL
 * that grpc-js made itself (or a proxy sent), with neither the `stepgate-replica` trailer every
 * replica's answer carries nor a Stepgate ErrorInfo. grpc-js reports a connection lost before or
 * after the response headers (the replica died, was reset, went away) as UNAVAILABLE ("Connection
 * dropped", the socket error such as "read ECONNRESET", "Stream refused by server", "No connection
 * established", HTTP 502-504 from a proxy), and a stream reset or a connection closed with an error
 * code as INTERNAL ("Received RST_STREAM with code 2 ...", "... Session closed with error code 2",
 * another socket error such as EPIPE). After the headers grpc-js never retries such a call: it was
 * committed. Whether the replica acted on it is unknown, so it is only safe to send again because
 * every Stepgate RPC is (idempotency keys, see `withIdempotencyKey`). Errors the client made
 * before sending (not from grpc-js) and a replica's own INTERNAL are not included.
 */
export function isLostInTransport(error: unknown): boolean {
  if (!(error instanceof ConnectError) || !error.isWireError) return false;
  if (error.code !== Code.Unavailable && error.code !== Code.Internal) return false;
  return !error.metadata.has(replicaTrailer) && stepgateReasons(error).length === 0;
}

/** Why `error` is worth sending the call again, or undefined when it is an answer to keep. */
export function resendReason(error: unknown): ResendReason | undefined {
  if (isReplicaUnavailable(error)) return "replica-unavailable";
  if (isLostInTransport(error)) return "lost-in-transport";
  return undefined;
}

/** The reasons of Stepgate's own ErrorInfo details on `error` (domain `stepgate.v1`). */
export function stepgateReasons(error: ConnectError): string[] {
  return error
    .findDetails(ErrorInfoSchema)
    .filter((info) => info.domain === errorDomain)
    .map((info) => info.reason);
}

/** How `withReplicaRetry` sends calls again. */
export interface ReplicaRetryPolicy {
  /** Resends after the first round, at most. 0 turns resending off. */
  rounds: number;
  /** Pause before the first resend in ms, doubled for each later one, with jitter (x0.5 to x1). */
  backoffMs: number;
  /** Shared by every call of a client. */
  throttle: ResendThrottle;
  /** Told of each resend before its pause (for a span event). */
  onResend?: (reason: ResendReason, round: number) => void;
}

/**
 * The client's one retry layer above the channel's own (grpc `retryPolicy`, which retries
 * UNAVAILABLE only until response headers arrive, on round_robin picks that may land on the
 * failing replica again). Runs `call` and, while it fails with a `resendReason`, the throttle
 * allows it and the deadline leaves time after the pause, runs it again, up to `policy.rounds`
 * more times. Each run is a fresh round of the channel's attempts, and round_robin moves the next
 * pick on to another replica. `call` gets the ms left of `timeoutMs`; aborting `signal` ends the
 * pause early (the next run then fails as cancelled). Rejects with the last run's error.
 */
export async function withReplicaRetry<T>(
  policy: ReplicaRetryPolicy,
  timeoutMs: number,
  call: (timeoutMs: number) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (let round = 0; ; round++) {
    try {
      const result = await call(Math.max(1, Math.floor(deadline - performance.now())));
      policy.throttle.succeeded();
      return result;
    } catch (error) {
      const reason = resendReason(error);
      if (reason === undefined) throw error;
      policy.throttle.failed();
      const pause = policy.backoffMs * 2 ** round * (0.5 + Math.random() / 2);
      const timeLeft = deadline - performance.now() - pause >= 1;
      if (round >= policy.rounds || !timeLeft || !policy.throttle.allowsResend()) throw error;
      policy.onResend?.(reason, round + 1);
      await sleep(pause, undefined, signal ? { signal } : {}).catch(() => {});
    }
  }
}
