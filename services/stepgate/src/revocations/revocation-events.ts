import { sessionRevocationKey } from "@stepgate/grant";
import { randomToken } from "../crypto/random-id.ts";
import type { RevocationEvent } from "../domain/revocation.ts";

/** The feed's event for an ended session: grants naming it (`sub`, `sid`) stop passing offline. */
export function sessionEnded(
  subject: string,
  sessionId: string,
  atMs: number,
  lifetimeMs: number,
): RevocationEvent {
  return revocation("session_ended", sessionRevocationKey(subject, sessionId), atMs, atMs + lifetimeMs);
}

/** The feed's event for a removed or replaced factor: grants naming it (`fid`) stop passing. */
export function factorEnded(factorId: string, atMs: number, lifetimeMs: number): RevocationEvent {
  return revocation("factor_ended", factorId, atMs, atMs + lifetimeMs);
}

/** The feed's event for a consumed single-use grant, kept until it expires (`expiresAtMs`). */
export function grantConsumed(jti: string, atMs: number, expiresAtMs: number): RevocationEvent {
  return revocation("grant_consumed", jti, atMs, Math.max(expiresAtMs, atMs + 1000));
}

/**
 * The feed's event for a retired signing key. Every replica may see the retirement: the id is
 * derived from the kid, so it is stored once.
 */
export function keyRetired(kid: string, atMs: number, lifetimeMs: number): RevocationEvent {
  return {
    id: `key_retired:${kid}`,
    kind: "key_retired",
    target: kid,
    revokedAtMs: atMs,
    expiresAtMs: atMs + lifetimeMs,
  };
}

function revocation(
  kind: RevocationEvent["kind"],
  target: string,
  atMs: number,
  expiresAtMs: number,
): RevocationEvent {
  return { id: randomToken(), kind, target, revokedAtMs: atMs, expiresAtMs };
}
