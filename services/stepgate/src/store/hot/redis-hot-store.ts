import { Redis } from "ioredis";
import type { HotStore } from "./hot-store.ts";

// INCR and set the expiry in one atomic step: on creation, or every time when sliding.
const incrementScript = `
local n = redis.call('INCR', KEYS[1])
if n == 1 or ARGV[2] == '1' then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;

// The two counters of an attempt in one step: the second only moves while the first is within its limit.
const incrementBothScript = `
local a = redis.call('INCR', KEYS[1])
if a == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if a > tonumber(ARGV[2]) then return {a, -1} end
local b = redis.call('INCR', KEYS[2])
if b == 1 or ARGV[4] == '1' then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
return {a, b}`;

export interface RedisHotStoreOptions {
  url: string;
  prefix: string;
}

/** The hot store on Redis; every key carries the configured prefix. */
export function createRedisHotStore(options: RedisHotStoreOptions): HotStore {
  const redis = new Redis(options.url, {
    keyPrefix: options.prefix,
    lazyConnect: false,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    connectTimeout: 2000,
    // Commands issued in the same tick share one write and one round trip.
    enableAutoPipelining: true,
  });
  // Connection errors surface through the commands and health; the client reconnects itself.
  redis.on("error", () => {});
  return {
    kind: "redis",
    get: (key) => redis.get(key),
    getMany: (keys) => (keys.length === 0 ? Promise.resolve([]) : redis.mget(keys)),
    async set(key, value, ttlMs) {
      await redis.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)));
    },
    async setIfAbsent(key, value, ttlMs) {
      return (await redis.set(key, value, "PX", Math.max(1, Math.ceil(ttlMs)), "NX")) === "OK";
    },
    async increment(key, ttlMs, sliding = false) {
      const n = await redis.eval(
        incrementScript,
        1,
        key,
        String(Math.max(1, Math.ceil(ttlMs))),
        sliding ? "1" : "0",
      );
      return Number(n);
    },
    async incrementBoth(first, second) {
      const ms = (t: number) => String(Math.max(1, Math.ceil(t)));
      const [a, b] = (await redis.eval(
        incrementBothScript,
        2,
        first.key,
        second.key,
        ms(first.ttlMs),
        String(first.limit),
        ms(second.ttlMs),
        second.sliding ? "1" : "0",
      )) as [number, number];
      return [Number(a), b < 0 ? undefined : Number(b)];
    },
    ttl: async (key) => Math.max(0, await redis.pttl(key)),
    async delete(...keys) {
      if (keys.length > 0) await redis.del(...keys);
    },
    async ping() {
      await redis.ping();
    },
    async close() {
      await redis.quit().catch(() => redis.disconnect());
    },
  };
}
