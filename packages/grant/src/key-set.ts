import type { KeyObject } from "node:crypto";
import { importJwk, type Jwk } from "./jwk.ts";

export interface KeySetOptions {
  // Fetches the current key set.
  fetch: () => Promise<Jwk[]>;
  // A successful fetch is repeated at most this often, however many unknown kids arrive.
  minRefetchIntervalMs: number;
  now: () => number;
  // Called for each kid that disappeared or changed, so what it verified can be forgotten.
  onKeyDropped: (kid: string) => void;
}

export interface KeySet {
  get(kid: string): KeyObject | undefined;
  // Refetches unless one is in flight (then shares it) or the last one is too recent (then does nothing).
  // Rejects with Error("jwks unavailable") when the key set cannot be fetched.
  refresh(): Promise<void>;
  // When the key set was last fetched successfully (ms), or undefined if never.
  loadedAt(): number | undefined;
}

// A failed fetch is retried sooner than a successful one: an outage of the key endpoint
// must not lock out new keys for a whole refetch interval.
const failedRetryMs = 1_000;

export function createKeySet(options: KeySetOptions): KeySet {
  let keys = new Map<string, { x: string; key: KeyObject }>();
  let attemptedAt = Number.NEGATIVE_INFINITY;
  let failure: Error | undefined;
  let inflight: Promise<void> | undefined;
  let loadedAt: number | undefined;

  async function load(): Promise<void> {
    let jwks: unknown;
    try {
      jwks = await options.fetch();
    } catch (cause) {
      throw fail(cause);
    }
    const next = new Map<string, { x: string; key: KeyObject }>();
    for (const jwk of Array.isArray(jwks) ? jwks : []) {
      const key = importJwk(jwk);
      if (key === undefined) continue;
      const { kid, x } = jwk as Jwk;
      if (next.has(kid)) continue;
      // Import each key once: a refetch keeps the KeyObject of a key that did not change.
      const known = keys.get(kid);
      next.set(kid, known?.x === x ? known : { x, key });
    }
    // An empty answer is more likely a broken endpoint than a real revocation of every key.
    if (next.size === 0) throw fail(new Error("no usable ed25519 key in the key set"));
    const previous = keys;
    keys = next;
    failure = undefined;
    loadedAt = options.now();
    for (const [kid, entry] of previous) {
      if (next.get(kid) !== entry) options.onKeyDropped(kid);
    }
  }

  function fail(cause: unknown): Error {
    failure = new Error("jwks unavailable", { cause });
    return failure;
  }

  return {
    get(kid) {
      return keys.get(kid)?.key;
    },
    loadedAt: () => loadedAt,
    refresh() {
      if (inflight !== undefined) return inflight;
      const now = options.now();
      if (failure !== undefined) {
        if (now - attemptedAt < Math.min(failedRetryMs, options.minRefetchIntervalMs)) {
          return Promise.reject(failure);
        }
      } else if (now - attemptedAt < options.minRefetchIntervalMs) {
        return Promise.resolve();
      }
      attemptedAt = now;
      inflight = load().finally(() => {
        inflight = undefined;
      });
      return inflight;
    },
  };
}
