import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export const redisUrl = process.env.STEPGATE_TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export interface TestRedisPrefix {
  prefix: string;
  /** Every key under the prefix, for assertions on what is stored. */
  dump(): Promise<Record<string, string>>;
  /** Deletes every key under the prefix. */
  clean(): Promise<void>;
}

/** A unique key prefix on the shared Redis, cleaned up by `clean()`. */
export function createTestRedisPrefix(url = redisUrl): TestRedisPrefix {
  const prefix = `stepgate-test:${randomBytes(6).toString("hex")}:`;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const keys = async () => {
    const found: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
      cursor = next;
      found.push(...batch);
    } while (cursor !== "0");
    return found;
  };
  return {
    prefix,
    async dump() {
      const out: Record<string, string> = {};
      for (const key of await keys()) out[key] = (await redis.get(key).catch(() => null)) ?? "";
      return out;
    },
    async clean() {
      try {
        const found = await keys();
        if (found.length > 0) await redis.del(...found);
        await redis.quit();
      } catch {
        // A Redis the test stopped has nothing left to clean.
        redis.disconnect();
      }
    },
  };
}
