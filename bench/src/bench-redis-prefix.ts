import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";

export interface BenchRedisPrefix {
  prefix: string;
  /** Redis's version and the PID of its server process (from INFO), for CPU accounting. */
  info(): Promise<{ version: string; pid: number }>;
  /** Deletes every key under the prefix (SCAN + DEL) and disconnects. */
  clean(): Promise<number>;
}

/** A unique key prefix on the shared Redis, so the run's hot state is its own and can be removed. */
export function createBenchRedisPrefix(url: string): BenchRedisPrefix {
  const prefix = `stepgate-bench:${randomBytes(6).toString("hex")}:`;
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  return {
    prefix,
    async info() {
      const text = await redis.info("server");
      const field = (name: string) => new RegExp(`^${name}:(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
      return { version: field("redis_version") || "unknown", pid: Number(field("process_id")) || 0 };
    },
    async clean() {
      let deleted = 0;
      try {
        let cursor = "0";
        do {
          const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 1000);
          cursor = next;
          if (keys.length > 0) deleted += await redis.del(...keys);
        } while (cursor !== "0");
        await redis.quit();
      } catch {
        redis.disconnect();
      }
      return deleted;
    },
  };
}
