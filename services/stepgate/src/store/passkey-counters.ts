import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

// Longer than the factor cache may answer for PostgreSQL (at most 30 days): a regression during
// an outage is caught however long the cached copy is used.
const rememberMs = 31 * 86_400_000;
// A retry comes within a challenge's life and its results' grace (store/verify-results.ts).
const ownerRememberMs = 30 * 60_000;

/** Passkey signature counters accepted, in the hot store: the fast, shared copy of `passkey_credentials.sign_count`. */
export interface PasskeyCounters {
  /**
   * Claims `counter` of the passkey for `claim` (a challenge and idempotency key): "advanced" for
   * a counter above any accepted, "held" for a retry of the same claim, "behind" for a counter
   * that did not grow (a cloned authenticator, WebAuthn 6.1.1).
   */
  claim(factorId: string, counter: number, claim: string): Promise<"advanced" | "held" | "behind">;
  /** Records that `claim` took the counter, so a retry overtaken by a later assertion still finds it. */
  own(factorId: string, counter: number, claim: string): Promise<void>;
  /** The claim that took the counter, if one was recorded (null: none). */
  ownerOf(factorId: string, counter: number): Promise<string | null>;
  /** Refuses every later counter of the passkey (a clone was seen), whatever PostgreSQL knows yet. */
  retire(factorId: string): Promise<void>;
}

// Above any signature counter (32 bits, WebAuthn 6.1): a retired passkey's claims are all behind.
const retiredPosition = 2 ** 32;

export function createPasskeyCounters(hot: HotStore): PasskeyCounters {
  return {
    claim: (factorId, counter, claim) =>
      hot.advance(hotKeys.passkeyCounter(factorId), counter, claim, rememberMs),
    own: (factorId, counter, claim) =>
      hot.set(hotKeys.passkeyCounterOwner(factorId, counter), claim, ownerRememberMs),
    ownerOf: (factorId, counter) => hot.get(hotKeys.passkeyCounterOwner(factorId, counter)),
    async retire(factorId) {
      await hot.advance(hotKeys.passkeyCounter(factorId), retiredPosition, "retired", rememberMs);
    },
  };
}
