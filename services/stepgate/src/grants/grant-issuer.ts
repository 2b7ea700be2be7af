import { createGrantSigner, type GrantClaims, type GrantSigner } from "@stepgate/grant";
import { randomToken } from "../crypto/random-id.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import type { Elevation } from "../domain/elevation.ts";
import { inSpanSync } from "../observability/tracing.ts";
import type { ActionPolicy } from "../policy/policy.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** A signed grant (compact JWT, EdDSA) and its claims. */
export interface IssuedGrant {
  token: string;
  claims: GrantClaims;
}

export interface GrantRequest {
  subject: string;
  sessionId: string;
  /** The calling service: the grant's audience. */
  caller: string;
  action: ActionPolicy;
  elevation: Elevation;
  /** The digest of the transaction the grant approves (`txn`), for actions that bind their grants. */
  transaction?: string;
}

/** Signs a grant for a request; never fails for a valid request. */
export type GrantIssuer = (request: GrantRequest) => IssuedGrant;

export interface GrantIssuerDeps {
  signingKeys: Pick<SigningKeys, "signingKey">;
  /** The `iss` claim. */
  issuer: string;
  clock: Clock;
  /** Names the replica on the `stepgate.grant.sign` span. */
  replicaId: string;
}

/**
 * Issues grants bound to the calling service (aud) and the action, signed with the current key,
 * each inside a `stepgate.grant.sign` span. Claims: iss, sub, sid, aud, action, acr, amr (RFC 8176),
 * auth_time, iat, exp (seconds), jti; `single_use` when the action's max_age is 0; `fid`, the factor
 * that produced the elevation, so removing it revokes the grant; `txn`, the digest of the
 * transaction it approves, for actions that bind their grants.
 */
export function createGrantIssuer({ signingKeys, issuer, clock, replicaId }: GrantIssuerDeps): GrantIssuer {
  // One signer per key: it encodes the key's header once.
  let signer: GrantSigner | undefined;
  const signerNow = () => {
    const key = signingKeys.signingKey();
    if (signer?.kid !== key.kid) signer = createGrantSigner(key);
    return signer;
  };
  const sign = ({
    subject,
    sessionId,
    caller,
    action,
    elevation,
    transaction,
  }: GrantRequest): IssuedGrant => {
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
    if (elevation.factorId !== undefined) claims.fid = elevation.factorId;
    if (transaction !== undefined) claims.txn = transaction;
    return { token: signerNow().sign(claims), claims };
  };
  return (request) =>
    inSpanSync(
      "stepgate.grant.sign",
      {
        "stepgate.action": request.action.name,
        "stepgate.acr": request.elevation.acr,
        "stepgate.replica": replicaId,
      },
      () => sign(request),
    );
}

/** The audit details of an issued grant: no token, only its id and claims that are not secret. */
export function grantAudit(grant: IssuedGrant): Record<string, unknown> {
  const { action, acr, amr, jti, exp, fid } = grant.claims;
  return { action, acr, amr, grant_id: jti, exp, ...(fid === undefined ? {} : { factor_id: fid }) };
}
