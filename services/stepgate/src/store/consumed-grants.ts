import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** Grants that were spent (single-use grants, management grants), by grant id (jti). */
export interface ConsumedGrants {
  /** Spends the grant, remembered for `ttlMs` (ms); true for the first call only. */
  consume(grantId: string, ttlMs: number): Promise<boolean>;
}

export function createConsumedGrants(hot: HotStore): ConsumedGrants {
  return {
    async consume(grantId, ttlMs) {
      // Issued together, so they share one round trip (auto-pipelining).
      const [spentBefore, first] = await Promise.all([
        hot.get(hotKeys.legacyConsumedGrant(grantId)),
        hot.setIfAbsent(hotKeys.consumedGrant(grantId), "1", ttlMs),
      ]);
      return first && spentBefore === null;
    },
  };
}
