/**
 * Short-lived shared state (challenges, counters, elevations, idempotency results), atomic
 * across replicas. Redis carries it when configured; PostgreSQL otherwise; memory in unit tests.
 * Keys come from `hotKeys` (store/hot-keys.ts); durations are in ms.
 */
/** One write `HotStore.claimThenWrite` applies: a value kept `ttlMs` (ms), or a deletion. */
export type HotWrite = { key: string; value: string; ttlMs: number } | { key: string; delete: true };

export interface HotStore {
  readonly kind: "redis" | "postgresql" | "memory";
  get(key: string): Promise<string | null>;
  getMany(keys: string[]): Promise<(string | null)[]>;
  set(key: string, value: string, ttlMs: number): Promise<void>;
  /** Sets the key only if it does not exist (or has expired); true if this call set it. */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Adds one and returns the new count, atomically. The ttl starts at the first increment, or
   * at every increment when `sliding` (a lockout that lasts from the last failure).
   */
  increment(key: string, ttlMs: number, sliding?: boolean): Promise<number>;
  /**
   * Counts one try against a pair of counters, e.g. a challenge's attempts and a subject's
   * failures. `second` is a gate: when it already holds `second.limit` or more, nothing changes and
   * the result is `[undefined, held]`. Otherwise `first` is incremented; only if its new count is
   * within `first.limit` is `second` incremented too (`[a, undefined]` when it is not). Atomic as a
   * whole on Redis and in memory (one round trip); on PostgreSQL a try the gate closes on in a race
   * may still have counted on `first`. A refused try never moves `second`'s expiry.
   */
  incrementBoth(
    first: { key: string; ttlMs: number; limit: number },
    second: { key: string; ttlMs: number; limit: number; sliding?: boolean },
  ): Promise<[number | undefined, number | undefined]>;
  /**
   * Sets `key` to `${version}:${value}` unless it holds a higher version; true if set. A writer
   * with older data can then never overwrite newer data (a cache filled by racing readers).
   */
  setVersioned(key: string, version: number, value: string, ttlMs: number): Promise<boolean>;
  /**
   * Moves a marker forward to `position`, held by `owner` (e.g. a TOTP time step and the call
   * that claimed it): "advanced" when nothing at or past `position` was held (the marker now
   * holds it for `ttlMs`), "held" when `owner` already holds exactly `position` (a retry),
   * "behind" otherwise (another owner holds it, or a later position is held). Atomic.
   */
  advance(
    key: string,
    position: number,
    owner: string,
    ttlMs: number,
  ): Promise<"advanced" | "held" | "behind">;
  /**
   * Claims `claim.key` for `claim.value` (kept `claim.ttlMs` when absent; a key that already holds
   * `claim.value` is this caller's again, e.g. a retry) and, only while this caller holds it,
   * applies `writes` in order. Returns what the key holds afterwards: `claim.value` when the writes
   * were applied, another claim's value when nothing was written. One round trip and atomic as a
   * whole on Redis (one script) and in memory; on PostgreSQL the claim is one statement and the
   * writes follow it.
   */
  claimThenWrite(claim: { key: string; value: string; ttlMs: number }, writes: HotWrite[]): Promise<string>;
  /** Lowers a counter by one, never below zero, keeping its expiry; nothing when absent. */
  decrement(key: string): Promise<void>;
  /**
   * Raises a numeric entry (a counter, or a value such as a timestamp) to at least `count`, kept
   * `ttlMs` when raised. Used to carry security state from one store to another without lowering it.
   */
  raise(key: string, count: number, ttlMs: number): Promise<void>;
  /** Milliseconds until the key expires; 0 when absent. */
  ttl(key: string): Promise<number>;
  delete(...keys: string[]): Promise<void>;
  close(): Promise<void>;
}
