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
 * stores mirror in PostgreSQL, so no switch re-opens what was closed.
 */
export function createFailoverHotStore(options: FailoverHotStoreOptions): FailoverHotStore {
  const { primary, primaryDependency, fallback } = options;
  let onPrimary = primaryDependency.available;
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
      while (wanted) {
        wanted = false;
        try {
          await options.resync();
        } catch {
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
      }
      if (primaryDependency.available) switchTo("redis");
    })().finally(() => {
      running = false;
    });
  };
  primaryDependency.onChange((available) => (available ? comeBack() : switchTo("postgresql")));
  primary.onReconnect(comeBack);
  const route = <T>(call: (store: HotStore) => Promise<T>): Promise<T> => {
    if (!onPrimary) return call(fallback);
    return call(primary).catch((error: unknown) => {
      if (!(error instanceof DependencyUnavailableError)) throw error;
      return call(fallback);
    });
  };
  return {
    get kind() {
      return onPrimary ? "redis" : "postgresql";
    },
    get: (key) => route((s) => s.get(key)),
    getMany: (keys) => route((s) => s.getMany(keys)),
    set: (key, value, ttlMs) => route((s) => s.set(key, value, ttlMs)),
    setIfAbsent: (key, value, ttlMs) => route((s) => s.setIfAbsent(key, value, ttlMs)),
    increment: (key, ttlMs, sliding) => route((s) => s.increment(key, ttlMs, sliding)),
    incrementBoth: (first, second) => route((s) => s.incrementBoth(first, second)),
    setVersioned: (key, version, value, ttlMs) => route((s) => s.setVersioned(key, version, value, ttlMs)),
    advance: (key, position, owner, ttlMs) => route((s) => s.advance(key, position, owner, ttlMs)),
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
