import type { HandlerContext } from "@connectrpc/connect";
import type { HotStore } from "../store/hot-store.ts";

export const faultHeader = "stepgate-fault";

/**
 * Test-only faults, asked for in request metadata and honoured only when the replica runs with
 * STEPGATE_FAULT_INJECTION=1. `crash-after-verify` kills the replica after Verify recorded its
 * result and before it replies, once per challenge across the fleet, so the client's retry lands
 * on a live replica.
 */
export interface Faults {
  afterVerify(ctx: HandlerContext, challengeId: string): Promise<void>;
}

export function createFaults(enabled: boolean, hot: HotStore): Faults {
  return {
    async afterVerify(ctx, challengeId) {
      if (!enabled || ctx.requestHeader.get(faultHeader) !== "crash-after-verify") return;
      if (await hot.setIfAbsent(`fault:${challengeId}`, "1", 60_000)) process.kill(process.pid, "SIGKILL");
    },
  };
}
