import { isNumericDate } from "./time-claims.ts";

// The claims of a Stepgate grant. Times are seconds since the epoch (RFC 7519 NumericDate).
export interface GrantClaims {
  iss: string;
  sub: string;
  sid: string;
  aud: string;
  action: string;
  acr: string;
  amr: string[];
  auth_time: number;
  iat: number;
  exp: number;
  jti: string;
  single_use?: true;
  /** The factor whose proof produced the grant (opaque id, as ListFactors reports it). Removing it revokes the grant. */
  fid?: string;
  /** A grant bound to one transaction: `transactionDigest` of its details (transaction.ts). */
  txn?: string;
}

// The JOSE `typ` header, so a grant is never mistaken for another JWT signed by the same key (RFC 8725 §3.11).
export const grantType = "stepgate-grant+jwt";

// Returns a frozen copy holding only the grant claims, or undefined when one is missing or of the wrong type.
// Frozen because verified claims are cached and handed to every caller presenting the same token.
export function parseGrantClaims(value: unknown): GrantClaims | undefined {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
  const { iss, sub, sid, aud, action, acr, amr, auth_time, iat, exp, jti, single_use, fid, txn } =
    value as Record<string, unknown>;
  if (
    typeof iss !== "string" ||
    typeof sub !== "string" ||
    typeof sid !== "string" ||
    typeof aud !== "string" ||
    typeof action !== "string" ||
    typeof acr !== "string" ||
    typeof jti !== "string" ||
    !isTime(auth_time) ||
    !isTime(iat) ||
    !isTime(exp) ||
    !isStringArray(amr)
  ) {
    return undefined;
  }
  // Anything but absent or `true` is refused: reading "true" or 1 as "not single-use" would skip the online check.
  if (single_use !== undefined && single_use !== true) return undefined;
  if (fid !== undefined && typeof fid !== "string") return undefined;
  // A binding that is not a digest is refused: read as "unbound", it would approve any transaction.
  if (txn !== undefined && (typeof txn !== "string" || txn === "")) return undefined;
  const claims: GrantClaims = {
    iss,
    sub,
    sid,
    aud,
    action,
    acr,
    amr: Object.freeze(amr.slice()) as string[],
    auth_time,
    iat,
    exp,
    jti,
  };
  if (single_use) claims.single_use = true;
  if (fid !== undefined) claims.fid = fid;
  if (txn !== undefined) claims.txn = txn;
  return Object.freeze(claims);
}

// Plausible seconds only: a time in milliseconds is refused here, before any freshness check.
const isTime = isNumericDate;

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === "string");
}
