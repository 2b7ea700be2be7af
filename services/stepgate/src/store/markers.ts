import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** Fleet-wide "first time" markers. */
export interface Markers {
  /** True for the first call with `name` and `id` across replicas within `ttlMs` (ms). */
  firstTime(name: string, id: string, ttlMs: number): Promise<boolean>;
}

export function createMarkers(hot: HotStore): Markers {
  return { firstTime: (name, id, ttlMs) => hot.setIfAbsent(hotKeys.marker(name, id), "1", ttlMs) };
}
