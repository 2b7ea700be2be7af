import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createStepgateClient } from "@stepgate/client";
import { loadConfig } from "@stepgate/server/config/config";
import { createLogger } from "@stepgate/server/log/logger";
import { type RunningServer, runServer } from "@stepgate/server/server/run";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { newKeyRing, writePolicy } from "./support/stepgate.ts";

describe("replicas starting together on an empty database", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let replicas: RunningServer[] = [];
  before(async () => {
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    const env = {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_PORT: "0",
      STEPGATE_POLICY_FILE: writePolicy(),
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redis.prefix,
    };
    const quiet = createLogger("warn", {}, new Writable({ write: (_c, _e, done) => done() }));
    replicas = await Promise.all(Array.from({ length: 4 }, () => runServer(loadConfig(env), quiet)));
  });
  after(async () => {
    await Promise.all(replicas.map((r) => r.shutdown(1000)));
    await redis.clean();
    await db.drop();
  });

  it("apply the migrations once and create exactly one signing key and fingerprint key, which all of them use", async () => {
    const migrations = await db.query<{ name: string }>("select name from stepgate_migrations");
    assert.deepEqual(
      migrations.map((m) => m.name),
      [
        "001-initial",
        "002-service-secrets",
        "003-audit-event-ids",
        "004-subject-versions",
        "005-signing-key-lifecycle",
        "006-reseal-progress",
        "007-enrolment-authorization",
        "008-passkeys",
        "009-revocation-feed",
        "010-subject-facts",
      ],
    );
    const keys = await db.query<{ kid: string }>("select kid from signing_keys");
    assert.equal(keys.length, 1);
    const secrets = await db.query<{ name: string }>("select name from service_secrets");
    assert.deepEqual(
      secrets.map((s) => s.name),
      ["fingerprint"],
    );
    const published = await Promise.all(
      replicas.map(async (r) => {
        const client = createStepgateClient({ target: `127.0.0.1:${r.port}`, caller: "payments" });
        try {
          return (await client.stepUp.getJwks({})).keys.map((k) => k.kid);
        } finally {
          client.close();
        }
      }),
    );
    for (const kids of published) assert.deepEqual(kids, [keys[0]?.kid]);
  });
});
