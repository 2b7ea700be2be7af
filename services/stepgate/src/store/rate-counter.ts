/** One rate limit: at most `calls` per `perSeconds` seconds for each key, in fixed windows. */
export interface RateCounter {
  /** The limit's name (subject, caller, source): it separates the limits' keys. */
  name: string;
  calls: number;
  perSeconds: number;
}

/** What counting one call found: let through, or refused until `retryAfterMs` (ms) from now. */
export type Counted = { allowed: true } | { allowed: false; retryAfterMs: number };
