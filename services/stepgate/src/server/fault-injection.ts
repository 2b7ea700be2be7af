import type { Interceptor } from "@connectrpc/connect";
import { StepUpService, type VerifyRequest } from "@stepgate/api";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Markers } from "../store/markers.ts";
import { armedForCrashAfterClaim } from "./crash-after-claim.ts";

/** The request header that asks for a fault. */
export const faultHeader = "stepgate-fault";

/** Faults the replica's environment asks for, for every call it serves (config/config.ts). */
export interface ReplicaFaults {
  /**
   * STEPGATE_FAULT_UNAVAILABLE=1: every call fails as if PostgreSQL and Redis were down, with the
   * very status a dead store produces (UNAVAILABLE, ErrorInfo `STORE_UNAVAILABLE`, RetryInfo
   * 1000 ms), while health still reports SERVING: a replica that is up but cannot serve.
   */
  unavailable: boolean;
}

/**
 * Test-only faults, as the innermost interceptor; the server installs it only when it runs with
 * STEPGATE_FAULT_INJECTION=1. Asked for in Verify's request metadata (`stepgate-fault`):
 * - `crash-after-verify` kills the replica (SIGKILL) after Verify recorded its result and before
 *   it replies, once per challenge across the fleet, so the client's retry lands on a live replica;
 * - `crash-after-claim` kills it once the code is claimed and before the result is recorded
 *   (server/crash-after-claim.ts).
 * Asked for by the environment: with `replicaFaults.unavailable`, every call fails before doing
 * anything with the error a store call throws when PostgreSQL refuses its connection; rpc/guard.ts
 * maps it to UNAVAILABLE exactly as it maps a real one (rpc/errors.ts), so clients retry elsewhere.
 * `hold-status` (any RPC) is a grpc-js server interceptor: server/hold-status-fault.ts.
 */
export function injectFaults(
  markers: Markers,
  replicaFaults: ReplicaFaults = { unavailable: false },
): Interceptor {
  return (next) => async (req) => {
    if (replicaFaults.unavailable) throw storeDown();
    if (req.method !== StepUpService.method.verify) return next(req);
    const fault = req.header.get(faultHeader);
    if (fault === "crash-after-claim") return armedForCrashAfterClaim(() => next(req));
    const res = await next(req);
    const { challengeId } = req.message as VerifyRequest;
    if (fault === "crash-after-verify" && (await markers.firstTime("fault", challengeId, 60_000))) {
      process.kill(process.pid, "SIGKILL");
    }
    return res;
  };
}

/** What a store call throws when PostgreSQL refuses the connection (store/dependency.ts). */
function storeDown(): Error {
  const refused = Object.assign(new Error("connect ECONNREFUSED (STEPGATE_FAULT_UNAVAILABLE)"), {
    code: "ECONNREFUSED",
  });
  return new DependencyUnavailableError("postgresql", "STORE_UNAVAILABLE", 1000, { cause: refused });
}
