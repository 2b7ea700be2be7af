import { AsyncLocalStorage } from "node:async_hooks";
import type { CheckProof } from "../factors/check-proof.ts";
import type { Markers } from "../store/markers.ts";

// Set for the Verify calls that asked for the fault, so the proof check deep inside them sees it.
const armed = new AsyncLocalStorage<true>();

/**
 * Test-only (STEPGATE_FAULT_INJECTION=1): runs a Verify sent with `stepgate-fault:
 * crash-after-claim` armed (server/fault-injection.ts), so `crashAfterClaim` kills its replica
 * once the code is claimed and before the result is recorded: the gap a retry with the same
 * idempotency key must survive.
 */
export function armedForCrashAfterClaim<T>(verify: () => T): T {
  return armed.run(true, verify);
}

/**
 * The proof check, killing the replica (SIGKILL) after an armed call's code was claimed, once
 * per claim across the fleet, so the retry on another replica runs to the end.
 */
export function crashAfterClaim(check: CheckProof, markers: Markers): CheckProof {
  return async (proof) => {
    const checked = await check(proof);
    if (
      armed.getStore() &&
      checked.result === "ok" &&
      (await markers.firstTime("crash-claim", proof.claim, 60_000))
    ) {
      process.kill(process.pid, "SIGKILL");
    }
    return checked;
  };
}
