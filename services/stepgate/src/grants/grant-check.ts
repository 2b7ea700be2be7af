import { createGrantVerifier, type GrantClaims, GrantError } from "@stepgate/grant";
import type { Clock } from "../domain/clock.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { Elevations } from "../stepup/elevations.ts";
import type { HotStore } from "../store/hot-store.ts";
import type { SigningKeys } from "./signing-keys.ts";

export interface GrantExpectation {
  audience: string;
  action: string;
  subject?: string;
  maxAgeSeconds?: number;
  /** Consume the grant even when it is reusable (factor management grants authorise one change). */
  consume?: boolean;
}

/** Online grant checks: signature and claims, then revocation, then single use. */
export interface GrantChecker {
  check(token: string, expect: GrantExpectation): Promise<GrantClaims>;
}

export function createGrantChecker(
  keys: SigningKeys,
  issuer: string,
  hot: HotStore,
  elevations: Elevations,
  clock: Clock,
): GrantChecker {
  const verifier = createGrantVerifier({ keys: async () => keys.published, issuer, now: clock });
  return {
    async check(token, expect) {
      let claims: GrantClaims;
      try {
        claims = await verifier.verify(token, {
          audience: expect.audience,
          action: expect.action,
          allowSingleUse: true,
          ...(expect.subject === undefined ? {} : { subject: expect.subject }),
          ...(expect.maxAgeSeconds === undefined ? {} : { maxAgeSeconds: expect.maxAgeSeconds }),
        });
      } catch (error) {
        if (!(error instanceof GrantError)) throw error;
        throw new StepgateError(
          error.reason === "GRANT_SINGLE_USE" ? "GRANT_INVALID" : error.reason,
          error.message,
        );
      }
      const revokedAt = await elevations.revokedAt(claims.sub, claims.sid);
      // Second-granular iat: a grant from the same second as the session's end counts as revoked.
      if (revokedAt !== undefined && claims.iat * 1000 <= revokedAt) {
        throw new StepgateError("GRANT_REVOKED", "grant's session was ended");
      }
      if (claims.single_use || expect.consume) {
        const ttlMs = Math.max(1000, claims.exp * 1000 - clock() + 60_000);
        const first = await hot.setIfAbsent(`consumed:${claims.jti}`, "1", ttlMs);
        if (!first) throw new StepgateError("GRANT_CONSUMED", "grant was already used");
      }
      return claims;
    },
  };
}
