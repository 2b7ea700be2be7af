// Carrying what PostgreSQL's hot_entries holds (security state, flow state) into a Redis that lost
// it, on the real stores.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { type Database, migrate, openDatabase } from "../database.ts";
import { createDependency } from "../dependency.ts";
import { createDurableMirror } from "../durable-mirror.ts";
import { hotKeys } from "../hot-keys.ts";
import { createSessionStore } from "../session-store.ts";
import { createPg, type Pg } from "../sql.ts";
import { createPostgresHotStore } from "./postgres-hot-store.ts";
import { createRedisHotStore } from "./redis-hot-store.ts";
import { resyncFlowState, resyncSecurityState } from "./resync.ts";

const bounds = { callTimeoutMs: 1000, failureThreshold: 3, halfOpenAfterMs: 1000 };
const aal2 = { acr: "aal2", amr: ["otp"], method: "totp" as const };

// Redis carries the hot state with PostgreSQL's mirror beside it, as in production.
describe("resync: what PostgreSQL holds, back in a Redis that lost it", () => {
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
      target: { kind: "url", url: redisUrl },
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
      (await sessions.standing("alice", "s1", ["aal2"])).elevations,
      [],
      "the ended factor's elevation is skipped",
    );
  });

  it("copies challenges, attempts and TOTP step claims in the form Redis's own operations use", async () => {
    const pgHot = createPostgresHotStore(pg);
    const step = hotKeys.totpStep("factor-1");
    await pgHot.set(hotKeys.challenge("c1"), "sealed challenge", 60_000);
    await pgHot.increment(hotKeys.challengeAttempts("c1"), 60_000);
    await pgHot.increment(hotKeys.challengeAttempts("c1"), 60_000);
    assert.equal(await pgHot.advance(step, 1000, "claim-a", 60_000), "advanced");
    await prefix.clean();
    assert.ok((await resyncFlowState(pg, redis)) >= 3);
    assert.equal(await redis.get(hotKeys.challenge("c1")), "sealed challenge");
    assert.equal(await redis.increment(hotKeys.challengeAttempts("c1"), 60_000), 3);
    // The claim came back as a claim: a replay of its step is refused, its retry held, a newer step taken.
    assert.equal(await redis.advance(step, 1000, "claim-b", 60_000), "behind");
    assert.equal(await redis.advance(step, 1000, "claim-a", 60_000), "held");
    assert.equal(await redis.advance(step, 1001, "claim-c", 60_000), "advanced");
  });

  it("never overwrites what Redis took since, nor moves a claim back", async () => {
    const pgHot = createPostgresHotStore(pg);
    const step = hotKeys.totpStep("factor-2");
    await pgHot.set(hotKeys.answered("c2"), "claim-old", 60_000);
    await pgHot.advance(step, 500, "claim-old", 60_000);
    await redis.set(hotKeys.answered("c2"), "claim-new", 60_000);
    await redis.advance(step, 501, "claim-new", 60_000);
    await resyncFlowState(pg, redis);
    assert.equal(await redis.get(hotKeys.answered("c2")), "claim-new");
    assert.equal(await redis.advance(step, 501, "claim-new", 60_000), "held");
  });
});
