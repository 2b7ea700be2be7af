// Times a token carries, checked so that none is ever fresher than it is (RFC 7519 NumericDate:
// seconds since the epoch). Shared by Stepgate's grant checks and its subject-token checks.

/** 9999-12-31T23:59:59Z in seconds: a NumericDate past it is milliseconds, microseconds or junk. */
export const latestNumericDate = 253_402_300_799;

/** The time claims of a token as they were decoded: anything, since they come from outside. */
export interface TimeClaims {
  iat?: unknown;
  auth_time?: unknown;
  nbf?: unknown;
  exp?: unknown;
}

/**
 * Fails closed on the times of a token, against `nowSeconds` with `toleranceSeconds` of skew:
 * each present claim must be a finite, non-negative number of seconds no later than year 9999;
 * `iat`, `auth_time` and `nbf` must not be later than now plus the tolerance (a time in the future,
 * or one written in milliseconds, would make `now - t` negative and so pass any max_age); and the
 * sign-in (`auth_time`) must not come after the token was issued (`iat`). Absent claims are left
 * to the caller (a missing `auth_time` is stale, not fresh). Returns a short lowercase reason
 * naming the claim, or undefined when the times hold. It never checks expiry: callers do.
 */
export function timeClaimFault(
  claims: TimeClaims,
  nowSeconds: number,
  toleranceSeconds: number,
): string | undefined {
  for (const name of ["iat", "auth_time", "nbf", "exp"] as const) {
    const value = claims[name];
    if (value !== undefined && !isNumericDate(value)) return `${name} is not a time in seconds`;
  }
  for (const name of ["iat", "auth_time", "nbf"] as const) {
    const value = claims[name] as number | undefined;
    if (value !== undefined && value > nowSeconds + toleranceSeconds) return `${name} is in the future`;
  }
  const { iat, auth_time: authTime } = claims as { iat?: number; auth_time?: number };
  if (iat !== undefined && authTime !== undefined && authTime > iat + toleranceSeconds) {
    return "auth_time is after iat";
  }
  return undefined;
}

/** True for a plausible NumericDate in seconds: a finite number from 0 to the end of year 9999. */
export function isNumericDate(value: unknown): value is number {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= latestNumericDate;
}
