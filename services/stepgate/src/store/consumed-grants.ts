import { type DurableMirror, noMirror } from "./durable-mirror.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** Grants that were spent (single-use grants, management grants), by grant id (jti). */
export interface ConsumedGrants {
  /** Spends the grant, remembered for `ttlMs` (ms); true for the first call only. */
  consume(grantId: string, ttlMs: number): Promise<boolean>;
}

/**
 * Spent grants are marked in the hot store and, while Redis carries it, in PostgreSQL too: a grant
 * is spent for the first caller only if neither has seen it, so a Redis that restarted empty (or
 * a replica cut off from it) cannot spend a grant twice.
 */
export function createConsumedGrants(hot: HotStore, mirror: DurableMirror = noMirror): ConsumedGrants {
  return {
    async consume(grantId, ttlMs) {
      const key = hotKeys.consumedGrant(grantId);
      // Issued together, so the Redis commands share one round trip (auto-pipelining).
      const [spentBefore, first] = await Promise.all([
        hot.get(hotKeys.legacyConsumedGrant(grantId)),
        hot.setIfAbsent(key, "1", ttlMs),
      ]);
      if (!first || spentBefore !== null) return false;
      // Only the one call Redis let through asks PostgreSQL, which remembers what Redis may have lost.
      return mirror.run((durable) => durable.setIfAbsent(key, "1", ttlMs), true);
    },
  };
}
