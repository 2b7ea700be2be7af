import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

// Long enough to outlast any outage worth starting through; refreshed at every start.
const keepMs = 30 * 86_400_000;

/**
 * Copies, in the hot store, of what a replica reads from PostgreSQL at start (the signing keys
 * and the fingerprint key, both still sealed with the key ring), so a replica that starts while
 * PostgreSQL is down can serve in a degraded mode. Values are opaque text.
 */
export interface StartupCopies {
  /** Keeps `value` under `name` (30 days, refreshed at each start). */
  save(name: string, value: string): Promise<void>;
  /** The copy under `name`, or null. */
  load(name: string): Promise<string | null>;
}

export function createStartupCopies(hot: HotStore): StartupCopies {
  return {
    save: (name, value) => hot.set(hotKeys.startupCopy(name), value, keepMs),
    load: (name) => hot.get(hotKeys.startupCopy(name)),
  };
}
