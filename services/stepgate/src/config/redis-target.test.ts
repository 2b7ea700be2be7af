import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "./config-error.ts";
import { type RedisEnv, redisTargetOf } from "./redis-target.ts";

const base: RedisEnv = { REDIS_SENTINEL_MASTER: "stepgate", REDIS_TLS: false };

describe("redisTargetOf", () => {
  it("no Redis when neither REDIS_URL nor REDIS_SENTINELS is set; one server by URL", () => {
    assert.equal(redisTargetOf(base), undefined);
    assert.deepEqual(redisTargetOf({ ...base, REDIS_URL: "redis://r:6379" }), {
      kind: "url",
      url: "redis://r:6379",
    });
  });

  it("reads sentinels as host[:port] (26379 by default, [v6]:port), with the master name and auth", () => {
    const target = redisTargetOf({
      ...base,
      REDIS_SENTINELS: "s1:26380, s2,[::1]:26381",
      REDIS_PASSWORD: "p",
      REDIS_SENTINEL_PASSWORD: "sp",
      REDIS_TLS: true,
    });
    assert.deepEqual(target, {
      kind: "sentinel",
      sentinels: [
        { host: "s1", port: 26380 },
        { host: "s2", port: 26379 },
        { host: "::1", port: 26381 },
      ],
      masterName: "stepgate",
      username: undefined,
      password: "p",
      sentinelUsername: undefined,
      sentinelPassword: "sp",
      tls: true,
    });
  });

  it("refuses both at once and addresses that do not parse, naming the entry, never its text", () => {
    assert.throws(
      () => redisTargetOf({ ...base, REDIS_URL: "redis://r", REDIS_SENTINELS: "s1" }),
      ConfigError,
    );
    for (const bad of ["s1,", "s1:0", "s1:65536", "s1:x", "a:b:c", "[::1", ":26379"]) {
      assert.throws(
        () => redisTargetOf({ ...base, REDIS_SENTINELS: bad }),
        (e: unknown) => e instanceof ConfigError && /entry \d/.test(e.message) && !e.message.includes(bad),
        bad,
      );
    }
  });
});
