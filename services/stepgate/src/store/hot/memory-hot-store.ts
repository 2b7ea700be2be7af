import type { HotStore } from "./hot-store.ts";

interface Entry {
  value: string | null;
  counter: number;
  /** Epoch ms. */
  expiresAt: number;
}

/**
 * The hot store in this process's memory, with the same semantics as Redis and PostgreSQL. It is
 * shared by nothing else, so it suits one process only: unit tests and single-process tools.
 */
export function createMemoryHotStore(now: () => number = Date.now): HotStore {
  const entries = new Map<string, Entry>();
  const live = (key: string) => {
    const entry = entries.get(key);
    if (entry && entry.expiresAt <= now()) entries.delete(key);
    return entries.get(key);
  };
  const expiry = (ttlMs: number) => now() + Math.max(1, Math.ceil(ttlMs));
  const increment = (key: string, ttlMs: number, sliding = false) => {
    const entry = live(key);
    if (!entry) {
      entries.set(key, { value: null, counter: 1, expiresAt: expiry(ttlMs) });
      return 1;
    }
    entry.counter += 1;
    if (sliding) entry.expiresAt = expiry(ttlMs);
    return entry.counter;
  };
  return {
    kind: "memory",
    get: async (key) => live(key)?.value ?? null,
    getMany: async (keys) => keys.map((k) => live(k)?.value ?? null),
    async set(key, value, ttlMs) {
      entries.set(key, { value, counter: 0, expiresAt: expiry(ttlMs) });
    },
    async setIfAbsent(key, value, ttlMs) {
      if (live(key)) return false;
      entries.set(key, { value, counter: 0, expiresAt: expiry(ttlMs) });
      return true;
    },
    increment: async (key, ttlMs, sliding) => increment(key, ttlMs, sliding),
    async incrementBoth(first, second) {
      const held = live(second.key)?.counter ?? 0;
      if (held >= second.limit) return [undefined, held];
      const a = increment(first.key, first.ttlMs);
      if (a > first.limit) return [a, undefined];
      return [a, increment(second.key, second.ttlMs, second.sliding)];
    },
    async setVersioned(key, version, value, ttlMs) {
      const entry = live(key);
      if (entry && entry.counter > version) return false;
      entries.set(key, { value: `${version}:${value}`, counter: version, expiresAt: expiry(ttlMs) });
      return true;
    },
    async advance(key, position, owner, ttlMs) {
      const entry = live(key);
      if (entry) {
        if (entry.counter > position || (entry.counter === position && entry.value !== owner))
          return "behind";
        if (entry.counter === position) return "held";
      }
      entries.set(key, { value: owner, counter: position, expiresAt: expiry(ttlMs) });
      return "advanced";
    },
    async claimThenWrite(claim, writes) {
      const held = live(claim.key)?.value;
      if (held !== undefined && held !== null && held !== claim.value) return held;
      if (held === undefined)
        entries.set(claim.key, { value: claim.value, counter: 0, expiresAt: expiry(claim.ttlMs) });
      for (const w of writes) {
        if ("delete" in w) entries.delete(w.key);
        else entries.set(w.key, { value: w.value, counter: 0, expiresAt: expiry(w.ttlMs) });
      }
      return claim.value;
    },
    async decrement(key) {
      const entry = live(key);
      if (entry) entry.counter = Math.max(0, entry.counter - 1);
    },
    async raise(key, count, ttlMs) {
      const entry = live(key);
      const current = entry ? Number(entry.value ?? entry.counter) : 0;
      if (current >= count) return;
      entries.set(key, { value: String(count), counter: count, expiresAt: expiry(ttlMs) });
    },
    ttl: async (key) => {
      const entry = live(key);
      return entry ? Math.max(0, entry.expiresAt - now()) : 0;
    },
    async delete(...keys) {
      for (const key of keys) entries.delete(key);
    },
    async close() {
      entries.clear();
    },
  };
}
