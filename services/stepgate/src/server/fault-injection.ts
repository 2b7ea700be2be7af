import type { ServiceImpl } from "@connectrpc/connect";
import type { StepUpService } from "@stepgate/api";
import type { Markers } from "../store/markers.ts";

/** The request header that asks for a fault. */
export const faultHeader = "stepgate-fault";

/**
 * Test-only faults, asked for in request metadata. The server installs this wrapper only when it
 * runs with STEPGATE_FAULT_INJECTION=1. `crash-after-verify` kills the replica (SIGKILL) after
 * Verify recorded its result and before it replies, once per challenge across the fleet, so the
 * client's retry lands on a live replica.
 */
export function withFaults(
  impl: ServiceImpl<typeof StepUpService>,
  markers: Markers,
): ServiceImpl<typeof StepUpService> {
  return {
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
}
