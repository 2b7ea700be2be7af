import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** A subject's factors as cached: opaque sealed text and the version it was read at. */
export interface CachedFactors {
  version: number;
  sealed: string;
}

/**
 * The encrypted factor cache in the hot store: what a subject can answer challenges with, so
 * StepUp can issue challenges while PostgreSQL is down. Entries are sealed by the caller; a
 * versioned write means a reader holding older data never overwrites newer data.
 */
export interface FactorCache {
  /** Keeps `sealed` as the subject's factors at `version` for `ttlMs` (ms), unless a newer version is cached. */
  put(subject: string, version: number, sealed: string, ttlMs: number): Promise<void>;
  get(subject: string): Promise<CachedFactors | undefined>;
}

/** Reads a stored `version:sealed` entry; undefined when it has another shape. */
export function parseCachedFactors(stored: string): CachedFactors | undefined {
  const sep = stored.indexOf(":");
  if (sep < 1) return undefined;
  return { version: Number(stored.slice(0, sep)), sealed: stored.slice(sep + 1) };
}

export function createFactorCache(hot: HotStore): FactorCache {
  return {
    async put(subject, version, sealed, ttlMs) {
      await hot.setVersioned(hotKeys.factorCache(subject), version, sealed, ttlMs);
    },
    async get(subject) {
      const stored = await hot.get(hotKeys.factorCache(subject));
      return stored === null ? undefined : parseCachedFactors(stored);
    },
  };
}
