import { createGrantVerifier, type GrantClaims, GrantError } from "@stepgate/grant";
import type { Fingerprint } from "../crypto/fingerprint.ts";
import type { Clock } from "../domain/clock.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { PublishRevocations } from "../revocations/publish-revocation.ts";
import { grantConsumed } from "../revocations/revocation-events.ts";
import type { ConsumedGrants } from "../store/consumed-grants.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { SigningKeys } from "./signing-keys.ts";

/** What the grant must be for. */
export interface GrantExpectation {
  /** The calling service the grant must be issued to (aud). */
  audience: string;
  action: string;
  subject?: string;
  /** Oldest acceptable auth_time, as seconds before now (RFC 9470 max_age). */
  maxAgeSeconds?: number;
  /** Consume the grant even when it is reusable (factor management grants authorise one change). */
  consume?: boolean;
  /**
   * The caller's key for this check (empty or absent: none). A consuming check sent again with the
   * same key, by the same audience for the same action, is answered as the first was: it passes
   * again, even once the spend's own change (a removed factor) revoked the grant.
   */
  idempotencyKey?: string;
  /** The transaction about to be executed: required for a bound grant (`txn`), refused for an unbound one. */
  transaction?: unknown;
}

/**
 * Online grant check: a signing key that is still published (a retired or unknown kid is
 * GRANT_INVALID at once, whatever the verifier cached), signature and claims, then revocation (an ended session, or a removed factor
 * named by `fid`), then single use. A retried consuming check (same key, audience and action) that
 * spent the grant already passes without the revocation check: the first answer stands.
 * Returns the claims; fails with GRANT_INVALID, GRANT_EXPIRED, GRANT_MISMATCH, TRANSACTION_MISMATCH
 * (a bound grant checked without its transaction or with another, or an unbound one with details),
 * GRANT_REVOKED or GRANT_CONSUMED.
 */
export type CheckGrant = (token: string, expect: GrantExpectation) => Promise<GrantClaims>;

export interface CheckGrantDeps {
  signingKeys: Pick<SigningKeys, "published" | "isPublished">;
  /** The `iss` every grant must carry. */
  issuer: string;
  /** Where ended sessions and factors are recorded. */
  sessions: Pick<SessionStore, "revocations">;
  consumedGrants: ConsumedGrants;
  /** Keys who spent a grant (audience, action, idempotency key) without storing any of them. */
  fingerprint: Fingerprint;
  clock: Clock;
  /** Tells offline verifiers that a single-use grant was consumed (the revocation feed). */
  publishRevocations: PublishRevocations;
}

export function createCheckGrant(deps: CheckGrantDeps): CheckGrant {
  const verifier = createGrantVerifier({
    keys: async () => deps.signingKeys.published(),
    issuer: deps.issuer,
    now: deps.clock,
    // The keys are in memory: a published kid the verifier has not seen yet is fetched at once.
    minRefetchIntervalMs: 0,
  });
  const verifySignedClaims = async (token: string, expect: GrantExpectation) => {
    const kid = kidOf(token);
    // Malformed tokens are left to the verifier, which names what is wrong with them.
    if (kid !== undefined && !deps.signingKeys.isPublished(kid)) {
      throw new StepgateError("GRANT_INVALID", "unknown or retired signing key");
    }
    try {
      return await verifier.verify(token, {
        audience: expect.audience,
        action: expect.action,
        allowSingleUse: true,
        ...(expect.subject === undefined ? {} : { subject: expect.subject }),
        ...(expect.maxAgeSeconds === undefined ? {} : { maxAgeSeconds: expect.maxAgeSeconds }),
        ...(expect.transaction === undefined ? {} : { transaction: expect.transaction }),
      });
    } catch (error) {
      if (!(error instanceof GrantError)) throw error;
      // Online checks accept single-use grants; a verifier refusing one is not an answer here.
      throw new StepgateError(onlineReason(error.reason), error.message);
    }
  };
  return async (token, expect) => {
    const claims = await verifySignedClaims(token, expect);
    const spends = claims.single_use === true || expect.consume === true;
    const spender =
      spends && expect.idempotencyKey
        ? deps.fingerprint("grant-spender", claims.jti, expect.audience, expect.action, expect.idempotencyKey)
        : undefined;
    // Read together: one round trip for the revocations and whether this very call spent it before.
    const [{ sessionEndedAt, factorEndedAt }, spentAlready] = await Promise.all([
      deps.sessions.revocations(claims.sub, claims.sid, claims.fid),
      spender === undefined ? false : deps.consumedGrants.spentBy(claims.jti, spender),
    ]);
    if (spentAlready) return claims;
    // An ended session is ended for good (StepUp and Verify issue it nothing after), so every
    // grant naming it is revoked: no comparison of times, and no same-second ambiguity.
    if (sessionEndedAt !== undefined) throw new StepgateError("GRANT_REVOKED", "grant's session was ended");
    // Whenever it was issued: a proof checked just before the removal may have signed it just after.
    if (factorEndedAt !== undefined) throw new StepgateError("GRANT_REVOKED", "grant's factor was removed");
    if (spends) {
      const ttlMs = Math.max(1000, claims.exp * 1000 - deps.clock() + 60_000);
      if (!(await deps.consumedGrants.consume(claims.jti, ttlMs, spender))) {
        throw new StepgateError("GRANT_CONSUMED", "grant was already used");
      }
      await deps.publishRevocations([grantConsumed(claims.jti, deps.clock(), (claims.exp + 60) * 1000)]);
    }
    return claims;
  };
}

/** The `kid` of a compact JWS's header, or undefined when there is none to read. */
function kidOf(token: string): string | undefined {
  if (typeof token !== "string") return undefined;
  const end = token.indexOf(".");
  if (end <= 0 || end > 1024) return undefined;
  try {
    const header: unknown = JSON.parse(Buffer.from(token.slice(0, end), "base64url").toString("utf8"));
    const kid = (header as { kid?: unknown } | null)?.kid;
    return typeof kid === "string" ? kid : undefined;
  } catch {
    return undefined;
  }
}

/** The reason an online check answers for a verifier's refusal (online checks accept single-use grants). */
function onlineReason(reason: GrantError["reason"]) {
  if (reason === "GRANT_SINGLE_USE") return "GRANT_INVALID";
  if (reason === "GRANT_TRANSACTION_MISMATCH") return "TRANSACTION_MISMATCH";
  return reason;
}
