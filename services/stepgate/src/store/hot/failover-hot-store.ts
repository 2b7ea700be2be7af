import { setTimeout as sleep } from "node:timers/promises";
import { DependencyUnavailableError } from "../../domain/dependency-unavailable.ts";
import type { Dependency } from "../dependency.ts";
import type { HotStore } from "./hot-store.ts";
import type { RedisHotStore } from "./redis-hot-store.ts";

export interface FailoverHotStoreOptions {
  primary: RedisHotStore;
  /** Redis's breaker: while its circuit is open, calls go to `fallback`. */
  primaryDependency: Dependency;
  /** The PostgreSQL hot store. */
  fallback: HotStore;
  /**
   * Carries security state back into Redis before it is used again (after an outage or a
   * reconnect: Redis may have restarted empty). Until it resolves, calls stay on `fallback`;
   * if it fails, it is tried again a second later.
   */
  resync: () => Promise<void>;
  /** Told when calls move to the fallback or back to Redis. */
  onSwitch?: (active: "redis" | "postgresql") => void;
  /**
   * How long, in ms, other replicas may take to see Redis answer again after this one does: their
   * breaker's half-open period plus one health probe (default 0). After a reconnect this replica's
   * circuit never noticed (Redis restarted within a call), calls stay on `fallback` this long
   * before the resync, so the fleet does not split across the two stores while peers whose circuit
   * opened are still on PostgreSQL. For as long again after a move back to Redis, a read that
   * Redis misses for a key of `readThrough` is looked up in `fallback`, where a peer not back yet
   * may have written it.
   */
  settleMs?: number;
  /** Keys a peer still on the fallback may write and this replica must find: flow state. */
  readThrough?: (key: string) => boolean;
}

/** The hot store with failover, and which store carries the calls now. */
export interface FailoverHotStore extends HotStore {
  readonly kind: "redis" | "postgresql";
}

/**
 * Redis while it answers, the PostgreSQL hot store while it does not. A call that fails on Redis
 * because Redis is unavailable is run once more on PostgreSQL. A challenge issued on Redis is not
 * found on PostgreSQL after a switch (the caller steps up again); what PostgreSQL took during the
 * outage is carried back by `resync`, with the revocations, spent grants and lockouts the typed
 * stores mirror in PostgreSQL, so no switch re-opens what was closed. Replicas do not switch at the
 * same instant: `settleMs` keeps one that saw only a reconnect from returning before its peers,
 * and lets one that returned find what a slower peer still wrote to PostgreSQL.
 */
export function createFailoverHotStore(options: FailoverHotStoreOptions): FailoverHotStore {
  const { primary, primaryDependency, fallback } = options;
  const { settleMs = 0, readThrough = () => false } = options;
  let onPrimary = primaryDependency.available;
  // Calls wait on the fallback until then after an unnoticed reconnect (epoch ms).
  let holdUntil = 0;
  // Reads Redis misses are looked up in the fallback until then (epoch ms).
  let settlingUntil = 0;
  let running = false;
  let closed = false;
  let wanted = false;
  // The one retry pending after a failed resync: each failure scheduling its own would start a new
  // chain of retries at every trigger (a half-open trial every second while Redis is down).
  let retry: NodeJS.Timeout | undefined;
  const switchTo = (active: "redis" | "postgresql") => {
    const next = active === "redis";
    if (next === onPrimary) return;
    onPrimary = next;
    if (next) settlingUntil = Date.now() + settleMs;
    options.onSwitch?.(active);
  };
  // Back to Redis only once the state that must survive is in it again. A reconnect during a
  // resync asks for another one: Redis may have lost what the first one wrote.
  const comeBack = () => {
    switchTo("postgresql");
    wanted = true;
    if (running) return;
    running = true;
    void (async () => {
      try {
        while (wanted) {
          wanted = false;
          const hold = holdUntil - Date.now();
          if (hold > 0) await sleep(hold, undefined, { ref: false });
          try {
            await options.resync();
          } catch {
            // Asked again while this one ran (a reconnect, a closed circuit): try at once.
            if (wanted) continue;
            // PostgreSQL cannot be read yet: stay on the fallback and try again shortly.
            if (!closed && retry === undefined) {
              retry = setTimeout(() => {
                retry = undefined;
                comeBack();
              }, 1000);
              retry.unref();
            }
            return;
          }
          // Asked again while this one ran: Redis may have lost what it wrote.
          if (wanted) continue;
          // A retry still pending would move calls off Redis again for nothing.
          clearTimeout(retry);
          retry = undefined;
          // A reconnect told while moving (by onSwitch) is seen by the loop's check.
          if (primaryDependency.available) switchTo("redis");
        }
      } finally {
        // At once, not a microtask later: a reconnect told in between would be lost.
        running = false;
      }
    })();
  };
  primaryDependency.onChange((available) => (available ? comeBack() : switchTo("postgresql")));
  primary.onReconnect(() => {
    if (primaryDependency.available) holdUntil = Math.max(holdUntil, Date.now() + settleMs);
    comeBack();
  });
  const route = <T>(call: (store: HotStore) => Promise<T>): Promise<T> => {
    if (!onPrimary) return call(fallback);
    return call(primary).catch((error: unknown) => {
      if (!(error instanceof DependencyUnavailableError)) throw error;
      return call(fallback);
    });
  };
  // A miss on Redis while peers may still write to the fallback: look there too. A fallback that
  // fails leaves the miss as it was (the caller sees what Redis holds).
  const settledRead = async (keys: string[], found: (string | null)[]) => {
    if (Date.now() >= settlingUntil) return found;
    const missing = keys.filter((key, i) => found[i] === null && readThrough(key));
    if (missing.length === 0) return found;
    const there = await fallback.getMany(missing).catch(() => missing.map(() => null));
    const byKey = new Map(missing.map((key, i) => [key, there[i] ?? null]));
    return keys.map((key, i) => found[i] ?? byKey.get(key) ?? null);
  };
  const readMany = async (keys: string[]) => {
    if (!onPrimary) return fallback.getMany(keys);
    const found = await route((s) => s.getMany(keys));
    return onPrimary ? settledRead(keys, found) : found;
  };
  return {
    get kind() {
      return onPrimary ? "redis" : "postgresql";
    },
    get: async (key) =>
      Date.now() < settlingUntil ? ((await readMany([key]))[0] ?? null) : route((s) => s.get(key)),
    getMany: readMany,
    set: (key, value, ttlMs) => route((s) => s.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => route((s) => s.setIfAbsent(key, value, ttlMs)),
    increment: (key, ttlMs, sliding) => route((s) => s.increment(key, ttlMs, sliding)),
    incrementBoth: (first, second) => route((s) => s.incrementBoth(first, second)),
    setVersioned: (key, version, value, ttlMs) => route((s) => s.setVersioned(key, version, value, ttlMs)),
    advance: (key, position, owner, ttlMs) => route((s) => s.advance(key, position, owner, ttlMs)),
    claimThenWrite: (claim, writes) => route((s) => s.claimThenWrite(claim, writes)),
    decrement: (key) => route((s) => s.decrement(key)),
    raise: (key, count, ttlMs) => route((s) => s.raise(key, count, ttlMs)),
    ttl: (key) => route((s) => s.ttl(key)),
    delete: (...keys) => route((s) => s.delete(...keys)),
    async close() {
      closed = true;
      clearTimeout(retry);
      await primary.close();
    },
  };
}
