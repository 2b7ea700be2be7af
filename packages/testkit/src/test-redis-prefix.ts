import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

/** The Redis used by default: STEPGATE_TEST_REDIS_URL (which `pnpm test` sets to a throwaway server
 * of its own when it is not given: test-stores.ts), else, for a test file run alone, the machine's
 * on port 6379. */
export const redisUrl = process.env.STEPGATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

/** Options of `createTestRedisPrefix`. */
export interface TestRedisPrefixOptions {
  /** The prefix is `<namespace>:<12 random hex digits>:`. Default `stepgate-test`. */
  namespace?: string;
}

/** A key prefix of its own on a shared Redis. Connects on the first call. */
export interface TestRedisPrefix {
  /** `<namespace>:<12 random hex digits>:`, for REDIS_PREFIX. */
  prefix: string;
  /** Every key under the prefix with its string value (`""` for other types), for assertions on what
   * is stored. Rejects with the ioredis error if Redis cannot be reached. */
  dump(): Promise<Record<string, string>>;
  /** Redis's version and the PID of its server process (from INFO server), e.g. for CPU accounting.
   * Rejects with the ioredis error if Redis cannot be reached. */
  info(): Promise<{ version: string; pid: number }>;
  /** Deletes every key under the prefix (SCAN + DEL), disconnects and resolves with how many keys it
   * deleted. Never rejects: a Redis that cannot be reached (e.g. one the test stopped) has nothing
   * left to clean. Call it last. */
  clean(): Promise<number>;
}

/** A unique key prefix on the Redis at `url` (default: the exported `redisUrl`), so a run's keys are
 * its own and can be removed. Throws nothing; each request fails after one retry. */
export function createTestRedisPrefix(url = redisUrl, options: TestRedisPrefixOptions = {}): TestRedisPrefix {
  const prefix = `${options.namespace ?? "stepgate-test"}:${randomBytes(6).toString("hex")}:`;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  async function* keyBatches() {
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
      cursor = next;
      if (batch.length > 0) yield batch;
    } while (cursor !== "0");
  }
  return {
    prefix,
    async dump() {
      const out: Record<string, string> = {};
      for await (const batch of keyBatches()) {
        for (const key of batch) out[key] = (await redis.get(key).catch(() => null)) ?? "";
      }
      return out;
    },
    async info() {
      const text = await redis.info("server");
      const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
      return { version: field("redis_version") || "unknown", pid: Number(field("process_id")) || 0 };
    },
    async clean() {
      let deleted = 0;
      try {
        for await (const batch of keyBatches()) deleted += await redis.del(...batch);
        await redis.quit();
      } catch {
        redis.disconnect();
      }
      return deleted;
    },
  };
}
