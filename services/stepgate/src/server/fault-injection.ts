import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { StepUpService } from "@stepgate/api";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Markers } from "../store/markers.ts";

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
 * Test-only faults for StepUpService. The server installs this wrapper only when it runs with
 * STEPGATE_FAULT_INJECTION=1. Asked for in request metadata: `crash-after-verify` kills the
 * replica (SIGKILL) after Verify recorded its result and before it replies, once per challenge
 * across the fleet, so the client's retry lands on a live replica. Asked for by the environment:
 * `replicaFaults` (see `withReplicaFaults`). `hold-status` (any RPC) is a server interceptor:
 * server/hold-status-fault.ts.
 */
export function withFaults(
  impl: ServiceImpl<typeof StepUpService>,
  markers: Markers,
  replicaFaults: ReplicaFaults = { unavailable: false },
): ServiceImpl<typeof StepUpService> {
  const faulty: ServiceImpl<typeof StepUpService> = {
    ...impl,
    async verify(req, ctx) {
      const response = await impl.verify(req, ctx);
      if (
        ctx.requestHeader.get(faultHeader) === "crash-after-verify" &&
        (await markers.firstTime("fault", req.challengeId, 60_000))
      ) {
        process.kill(process.pid, "SIGKILL");
      }
      return response;
    },
  };
  return withReplicaFaults(StepUpService, faulty, replicaFaults);
}

/**
 * Test-only faults driven by the replica's environment, for any service (FactorService; StepUpService
 * gets them through `withFaults`). With `unavailable`, every method fails before doing anything
 * with the error a store call throws when PostgreSQL refuses its connection: rpc/guard.ts maps it
 * to UNAVAILABLE exactly as it maps a real one (rpc/errors.ts), so clients retry elsewhere.
 */
export function withReplicaFaults<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  faults: ReplicaFaults,
): ServiceImpl<S> {
  if (!faults.unavailable) return impl;
  const failing: Record<string, () => Promise<never>> = {};
  for (const method of service.methods) {
    failing[method.localName] = async () => {
      throw storeDown();
    };
  }
  return failing as unknown as ServiceImpl<S>;
}

/** What a store call throws when PostgreSQL refuses the connection (store/dependency.ts). */
function storeDown(): Error {
  const refused = Object.assign(new Error("connect ECONNREFUSED (STEPGATE_FAULT_UNAVAILABLE)"), {
    code: "ECONNREFUSED",
  });
  return new DependencyUnavailableError("postgresql", "STORE_UNAVAILABLE", 1000, { cause: refused });
}
