import { Code, ConnectError } from "@connectrpc/connect";
import { errorDomain } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";

// A replica answered that one of its stores could not serve the call: nothing was decided there.
const replicaCouldNotServe = new Set(["STORE_UNAVAILABLE", "DEPENDENCY_UNAVAILABLE"]);

/**
 * True when a Stepgate replica answered UNAVAILABLE because a store it depends on could not serve
 * the call (ErrorInfo reason STORE_UNAVAILABLE or DEPENDENCY_UNAVAILABLE). Nothing was decided, so
 * the call is safe to send again; another replica may have what this one lacks.
 */
export function isReplicaUnavailable(error: unknown): boolean {
  if (!(error instanceof ConnectError) || error.code !== Code.Unavailable) return false;
  return error
    .findDetails(ErrorInfoSchema)
    .some((info) => info.domain === errorDomain && replicaCouldNotServe.has(info.reason));
}

/**
 * Runs `call` and, while it fails with `isReplicaUnavailable` and time is left, runs it again, up
 * to `rounds` more times. The channel's own retries (grpc `retryPolicy`) pick a replica per
 * attempt without avoiding one that just failed, so all attempts of a call can land on the one
 * sick replica; another round of attempts makes that unlikely (with one of three replicas sick
 * and 4 attempts a round, from 1 call in 81 to 1 in 531,441 with two more rounds).
 * `call` gets the ms left of `timeoutMs`.
 */
export async function withReplicaRetry<T>(
  rounds: number,
  timeoutMs: number,
  call: (timeoutMs: number) => Promise<T>,
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (let round = 0; ; round++) {
    const left = Math.floor(deadline - performance.now());
    try {
      return await call(Math.max(1, left));
    } catch (error) {
      if (round >= rounds || !isReplicaUnavailable(error) || deadline - performance.now() < 1) throw error;
    }
  }
}
