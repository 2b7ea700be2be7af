import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/**
 * Recorded Verify results, one per challenge and idempotency claim, so a retried call gets the
 * first answer. Entries are opaque strings (sealed by the caller when they hold a grant).
 */
export interface VerifyResults {
  get(challengeId: string, claim: string): Promise<string | null>;
  /** Records `entry` for `ttlMs` (ms) unless one is recorded already; true if this call recorded it. */
  record(challengeId: string, claim: string, entry: string, ttlMs: number): Promise<boolean>;
}

export function createVerifyResults(hot: HotStore): VerifyResults {
  return {
    get: (challengeId, claim) => hot.get(hotKeys.verifyResult(challengeId, claim)),
    record: (challengeId, claim, entry, ttlMs) =>
      hot.setIfAbsent(hotKeys.verifyResult(challengeId, claim), entry, ttlMs),
  };
}
