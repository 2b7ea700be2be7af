import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

// A step can match a code for at most three steps (RFC 6238 5.2, one step of skew each way):
// remembering it for four is enough to refuse every replay.
const rememberMs = 4 * 30_000;

/** TOTP time steps claimed in the hot store, per factor: the fast, shared copy of `factors.last_step`. */
export interface TotpStepClaims {
  /**
   * Claims `step` of the factor for `claim`: "advanced" for the first claim of a step newer than
   * any claimed, "held" for a retry of the same claim, "behind" for a replay.
   */
  claim(factorId: string, step: number, claim: string): Promise<"advanced" | "held" | "behind">;
}

export function createTotpStepClaims(hot: HotStore): TotpStepClaims {
  return {
    claim: (factorId, step, claim) => hot.advance(hotKeys.totpStep(factorId), step, claim, rememberMs),
  };
}
