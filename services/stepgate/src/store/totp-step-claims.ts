import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

// A step can match a code for at most three steps (RFC 6238 5.2, one step of skew each way):
// remembering it for four is enough to refuse every replay.
const rememberMs = 4 * 30_000;

/** TOTP time steps claimed in the hot store, per factor: the fast, shared copy of `factors.last_step`. */
export interface TotpStepClaims {
  /**
   * Claims `step` of the factor for `claim` (a challenge and idempotency key): "advanced" for the
   * first claim of a step newer than any claimed, "held" for a retry of the same claim, "behind"
   * for a replay (or a retry overtaken by a later step: see `ownerOf`).
   */
  claim(factorId: string, step: number, claim: string): Promise<"advanced" | "held" | "behind">;
  /**
   * Records that `claim` took the step, once every copy agreed, kept apart from the latest step:
   * a retry whose first reply was lost still finds its own claim after the factor's next step was
   * taken by another call.
   */
  own(factorId: string, step: number, claim: string): Promise<void>;
  /** The claim that took the step, if one was recorded (null: none). */
  ownerOf(factorId: string, step: number): Promise<string | null>;
}

export function createTotpStepClaims(hot: HotStore): TotpStepClaims {
  return {
    claim: (factorId, step, claim) => hot.advance(hotKeys.totpStep(factorId), step, claim, rememberMs),
    own: (factorId, step, claim) => hot.set(hotKeys.totpStepOwner(factorId, step), claim, rememberMs),
    ownerOf: (factorId, step) => hot.get(hotKeys.totpStepOwner(factorId, step)),
  };
}
