import type { RevocationKind } from "./revocation-set.ts";

// Why a grant was refused. A caller that cannot reach the key set gets a plain Error instead,
// so "could not check" is never confused with "bad grant".
// GRANT_TRANSACTION_MISMATCH: a bound grant checked without its transaction's details or with
// another's, or an unbound grant checked as if it were bound.
// GRANT_REVOKED: the revocation feed named the grant's session, factor, jti or signing key.
export type GrantErrorReason =
  | "GRANT_INVALID"
  | "GRANT_EXPIRED"
  | "GRANT_MISMATCH"
  | "GRANT_SINGLE_USE"
  | "GRANT_TRANSACTION_MISMATCH"
  | "GRANT_REVOKED";

// Messages are fixed strings: they never quote the token, any part of it, or the claims in it.
export class GrantError extends Error {
  readonly reason: GrantErrorReason;
  /** For GRANT_REVOKED from the revocation feed: what was revoked (e.g. "grant_consumed": a single-use grant spent). */
  readonly revocation: RevocationKind | undefined;

  constructor(reason: GrantErrorReason, message: string, revocation?: RevocationKind) {
    super(message);
    this.name = "GrantError";
    this.reason = reason;
    this.revocation = revocation;
  }
}
