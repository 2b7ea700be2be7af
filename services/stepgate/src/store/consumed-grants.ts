import { type DurableMirror, noMirror } from "./durable-mirror.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** Grants that were spent (single-use grants, management grants), by grant id (jti). */
export interface ConsumedGrants {
  /**
   * Spends the grant for `spender` (a keyed hash of who spent it and with which idempotency key;
   * undefined when the call carried no key), remembered for `ttlMs` (ms). True for the first call,
   * and for a later one by the same `spender`: a retried spend is answered as the first was.
   */
  consume(grantId: string, ttlMs: number, spender?: string): Promise<boolean>;
  /** True when the grant was spent by `spender` already (a retry of that call). */
  spentBy(grantId: string, spender: string): Promise<boolean>;
}

// What a spend without an idempotency key leaves: no later call can claim it as its own.
const anonymous = "1";

/**
 * Spent grants are marked in the hot store and, while Redis carries it, in PostgreSQL too: a grant
 * is spent for the first caller only if neither has seen it, so a Redis that restarted empty (or
 * a replica cut off from it) cannot spend a grant twice.
 */
export function createConsumedGrants(hot: HotStore, mirror: DurableMirror = noMirror): ConsumedGrants {
  // Set if absent, or already set by this spender.
  const spendIn = async (store: HotStore, key: string, value: string, ttlMs: number) =>
    (await store.setIfAbsent(key, value, ttlMs)) || (value !== anonymous && (await store.get(key)) === value);
  return {
    async consume(grantId, ttlMs, spender) {
      const key = hotKeys.consumedGrant(grantId);
      const value = spender ?? anonymous;
      // Issued together, so the Redis commands share one round trip (auto-pipelining).
      const [spentBefore, mine] = await Promise.all([
        hot.get(hotKeys.legacyConsumedGrant(grantId)),
        spendIn(hot, key, value, ttlMs),
      ]);
      if (!mine || spentBefore !== null) return false;
      // Only a call Redis let through asks PostgreSQL, which remembers what Redis may have lost.
      return mirror.run((durable) => spendIn(durable, key, value, ttlMs), true);
    },
    spentBy: async (grantId, spender) => (await hot.get(hotKeys.consumedGrant(grantId))) === spender,
  };
}
