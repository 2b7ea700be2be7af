// Why a grant was refused. A caller that cannot reach the key set gets a plain Error instead,
// so "could not check" is never confused with "bad grant".
export type GrantErrorReason = "GRANT_INVALID" | "GRANT_EXPIRED" | "GRANT_MISMATCH" | "GRANT_SINGLE_USE";

// Messages are fixed strings: they never quote the token, any part of it, or the claims in it.
export class GrantError extends Error {
  readonly reason: GrantErrorReason;

  constructor(reason: GrantErrorReason, message: string) {
    super(message);
    this.name = "GrantError";
    this.reason = reason;
  }
}
