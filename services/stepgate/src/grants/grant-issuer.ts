import { createGrantSigner, type GrantClaims } from "@stepgate/grant";
import type { ActionPolicy } from "../config/policy.ts";
import { randomToken } from "../crypto/random-id.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import type { Elevation } from "../stepup/elevations.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** A signed grant and its claims. */
export interface IssuedGrant {
  token: string;
  claims: GrantClaims;
}

export interface GrantRequest {
  subject: string;
  sessionId: string;
  caller: string;
  action: ActionPolicy;
  elevation: Elevation;
}

export type GrantIssuer = (request: GrantRequest) => IssuedGrant;

/** Issues grants bound to the calling service (aud) and the action, signed with the active key. */
export function createGrantIssuer(keys: SigningKeys, issuer: string, clock: Clock): GrantIssuer {
  const signer = createGrantSigner(keys.active);
  return ({ subject, sessionId, caller, action, elevation }) => {
    const iat = toSeconds(clock());
    const claims: GrantClaims = {
      iss: issuer,
      sub: subject,
      sid: sessionId,
      aud: caller,
      action: action.name,
      acr: elevation.acr,
      amr: elevation.amr,
      auth_time: elevation.authTime,
      iat,
      exp: iat + action.grantTtl,
      jti: randomToken(),
    };
    // max_age 0: the grant authorises one operation and CheckGrant consumes it.
    if (action.maxAge === 0) claims.single_use = true;
    return { token: signer.sign(claims), claims };
  };
}
