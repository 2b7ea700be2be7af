import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { type Database, migrate, openDatabase } from "./database.ts";
import { createDependency } from "./dependency.ts";
import { createDurableMirror } from "./durable-mirror.ts";
import { createPostgresHotStore } from "./hot/postgres-hot-store.ts";
import { createRedisHotStore } from "./hot/redis-hot-store.ts";
import { resyncSecurityState } from "./hot/resync.ts";
import { createSessionStore } from "./session-store.ts";
import { createPg, type Pg } from "./sql.ts";

const bounds = { callTimeoutMs: 1000, failureThreshold: 3, halfOpenAfterMs: 1000 };
const aal2 = { acr: "aal2", amr: ["otp"], method: "totp" as const };

// Redis carries the hot state with PostgreSQL's mirror beside it, as in production.
describe("session store: revocations survive a Redis that restarts empty", () => {
  let testDb: TestDatabase;
  let db: Database;
  let pg: Pg;
  let prefix: TestRedisPrefix;
  let redis: ReturnType<typeof createRedisHotStore>;
  before(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ url: testDb.url, poolSize: 2, statementTimeoutMs: 2000 });
    await migrate(db, testDb.url);
    pg = createPg(db, createDependency("postgresql", bounds));
    prefix = createTestRedisPrefix();
    redis = createRedisHotStore({
      url: redisUrl,
      prefix: prefix.prefix,
      dependency: createDependency("redis", bounds),
      connectTimeoutMs: 2000,
    });
    await redis.ready(2000);
  });
  after(async () => {
    await redis.close();
    await prefix.clean();
    await db.close();
    await testDb.drop();
  });

  it("an ended factor and an ended session come back from the mirror after Redis lost them", async () => {
    const durable = createPostgresHotStore(pg);
    const sessions = createSessionStore(redis, createDurableMirror(redis, durable));
    const authTime = Math.floor(Date.now() / 1000) - 5;
    await sessions.recordElevation("alice", "s1", { ...aal2, authTime, factorId: "f1" }, 60_000);
    await sessions.endFactor("f1", Date.now(), 60_000);
    await sessions.end("bob", "s9", Date.now(), 60_000, ["aal2"]);
    assert.equal((await prefix.clean()) > 0, true, "Redis lost everything");
    assert.equal(await sessions.factorEnded("f1"), false);
    assert.ok((await resyncSecurityState(pg, redis)) >= 2);
    assert.equal(await sessions.factorEnded("f1"), true);
    const revocations = await sessions.revocations("bob", "s9", "f1");
    assert.ok(revocations.sessionEndedAt !== undefined && revocations.factorEndedAt !== undefined);
    await sessions.recordElevation("alice", "s1", { ...aal2, authTime, factorId: "f1" }, 60_000);
    assert.deepEqual(
      await sessions.findElevations("alice", "s1", ["aal2"]),
      [],
      "the ended factor's elevation is skipped",
    );
  });
});
