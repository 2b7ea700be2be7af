import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { type AuditLog, createAuditLog } from "@stepgate/server/audit/audit-log";
import { DependencyUnavailableError } from "@stepgate/server/domain/dependency-unavailable";
import { totpCode } from "@stepgate/server/factors/totp";
import { type Database, openDatabase } from "@stepgate/server/store/database";
import { createDependency } from "@stepgate/server/store/dependency";
import { createPg, type Sql } from "@stepgate/server/store/sql";
import { openStores, type Stores } from "@stepgate/server/store/stores";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { type OwnRedis, startOwnRedis } from "@stepgate/testkit/own-redis";
import { type ReplicaProcess, replicaProcess } from "@stepgate/testkit/replica-process";
import { createTestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { Redis } from "ioredis";
import { replicaBasePort } from "./support/cluster.ts";
import { newKeyRing, writePolicy } from "./support/stepgate.ts";

/** The outbox stream's key under a prefix (store/hot-keys.ts `auditOutbox`). */
const streamKey = (prefix: string) => `${prefix}audit-outbox`;

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Entries in the stream, and entries delivered to a drainer and not acknowledged (by consumer). */
async function outboxState(redis: Redis, prefix: string) {
  const key = streamKey(prefix);
  const length = await redis.xlen(key);
  const summary = (await redis.xpending(key, "audit-drainers").catch(() => [0])) as [
    number,
    string | null,
    string | null,
    [string, string][] | null,
  ];
  const byConsumer = Object.fromEntries((summary[3] ?? []).map(([name, n]) => [name, Number(n)]));
  return { length, pending: Number(summary[0]), byConsumer };
}

/** A fresh database on `server`, queried through the service's own pool, which survives PostgreSQL
 * going away (testkit's query connection has no error listener, so a stop would crash the test). */
async function freshDatabase(
  server: OwnPostgres,
): Promise<{ url: string; sql: Sql; close(): Promise<void> }> {
  const { url } = await createTestDatabase(server.url);
  const db: Database = await openDatabase({ url, poolSize: 1 });
  const unbounded = createDependency("postgresql", {
    callTimeoutMs: 10_000,
    failureThreshold: 1000,
    halfOpenAfterMs: 100,
  });
  return { url, sql: createPg(db, unbounded).sql, close: () => db.close() };
}

/** One in-process replica's stores and audit log, as compose wires them. */
interface AuditReplica {
  stores: Stores;
  log: AuditLog;
  errors: unknown[];
  close(): Promise<void>;
}

async function auditReplica(name: string, databaseUrl: string, redis: string, prefix: string) {
  const bounds = { callTimeoutMs: 2000, failureThreshold: 3, halfOpenAfterMs: 500 };
  const stores = await openStores({
    databaseUrl,
    databasePoolSize: 2,
    redisTarget: { kind: "url", url: redis },
    redisPrefix: prefix,
    postgres: bounds,
    redis: { ...bounds, callTimeoutMs: 500 },
    factorCacheTtlMs: 60_000,
  });
  const errors: unknown[] = [];
  const log = createAuditLog({
    store: stores.audit,
    outbox: stores.auditOutbox,
    replica: name,
    onError: (error) => errors.push(error),
    claimAfterMs: 500,
    retryMaxMs: 200,
  });
  const replica: AuditReplica = {
    stores,
    log,
    errors,
    async close() {
      await log.close();
      await stores.close();
    },
  };
  return replica;
}

describe("audit outbox with PostgreSQL and Redis going away", () => {
  let pg: OwnPostgres;
  let ownRedis: OwnRedis;
  let redis: Redis;
  const prefixes: TestRedisPrefix[] = [];
  const databases: { close(): Promise<void> }[] = [];
  before(async () => {
    [pg, ownRedis] = await Promise.all([startOwnPostgres(), startOwnRedis()]);
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  });
  after(async () => {
    redis.disconnect();
    await Promise.all(databases.map((d) => d.close()));
    await Promise.all(prefixes.map((p) => p.clean()));
    await ownRedis.stop();
    await pg.destroy();
  });
  const database = async () => {
    const db = await freshDatabase(pg);
    databases.push(db);
    return db;
  };

  const freshPrefix = () => {
    const prefix = createTestRedisPrefix();
    prefixes.push(prefix);
    return prefix;
  };

  it("stores events recorded while PostgreSQL was down exactly once when it is back, also those a stopped replica held", async () => {
    const db = await database();
    const { prefix } = freshPrefix();
    const a = await auditReplica("a", db.url, redisUrl, prefix);
    const b = await auditReplica("b", db.url, redisUrl, prefix);
    const replicas = { a, b };
    try {
      const recordSome = (from: number, count: number) =>
        Promise.all(
          Object.entries(replicas).flatMap(([name, r]) =>
            Array.from({ length: count }, (_, i) =>
              r.log.record({
                type: "grant.issued",
                subject: `s-${name}`,
                details: { n: from + i, by: name },
              }),
            ),
          ),
        );
      await recordSome(0, 20);
      await a.log.flush();
      await b.log.flush();
      assert.equal((await db.sql("select 1 from audit_events")).length, 40);

      await pg.stop();
      // Every record resolves: the events are in Redis.
      await recordSome(20, 50);
      // Both drainers took events, failed to insert them and keep them pending.
      await until(async () => {
        const s = await outboxState(redis, prefix);
        return s.length === 100 && (s.byConsumer.a ?? 0) > 0 && (s.byConsumer.b ?? 0) > 0;
      }, "both drainers holding the events");
      assert.ok(a.errors.length > 0 && b.errors.length > 0, "the failed inserts are reported");
      const held = (await outboxState(redis, prefix)).byConsumer.a ?? 0;
      // Replica a stops for good while it holds events it could not store.
      await a.close();

      await pg.start();
      await until(
        async () => (await db.sql("select 1 from audit_events")).length >= 140,
        "b to store its own events and take over a's",
      );
      await b.log.flush();
      const rows = await db.sql<{ n: number; by: string; event_id: string; replica: string }>(
        "select (details->>'n')::int as n, details->>'by' as by, event_id, replica from audit_events",
      );
      assert.equal(rows.length, 140);
      assert.equal(new Set(rows.map((r) => r.event_id)).size, 140, "each event once");
      for (const name of ["a", "b"]) {
        const ns = rows.filter((r) => r.by === name).map((r) => r.n);
        assert.deepEqual(
          ns.sort((x, y) => x - y),
          Array.from({ length: 70 }, (_, i) => i),
          `every event of ${name}`,
        );
        assert.ok(
          rows.filter((r) => r.by === name).every((r) => r.replica === name),
          "tagged by the recorder",
        );
      }
      assert.deepEqual(await outboxState(redis, prefix), { length: 0, pending: 0, byConsumer: {} });
      process.stdout.write(`# a held ${held} events when it stopped; b stored them\n`);
    } finally {
      await Promise.all(Object.values(replicas).map((r) => r.close().catch(() => {})));
    }
  });

  it("inserts into PostgreSQL when the append fails, before record resolves; with neither, record rejects", async () => {
    const db = await database();
    const { prefix } = freshPrefix();
    const r = await auditReplica("r", db.url, redisUrl, prefix);
    try {
      const count = async () => (await db.sql("select 1 from audit_events")).length;
      // Something else holds the stream's key: every XADD fails (WRONGTYPE).
      await redis.set(streamKey(prefix), "not a stream");
      await r.log.record({ type: "factor.removed", subject: "s", details: { n: 1 } });
      assert.equal(await count(), 1, "in PostgreSQL when record resolved");
      assert.ok(
        r.errors.some((e) => /audit outbox append failed \(WRONGTYPE/.test(String(e))),
        "the failed append is reported",
      );
      await pg.stop();
      // A store that is down stays a store that is down: the call answers UNAVAILABLE, not INTERNAL.
      await assert.rejects(
        r.log.record({ type: "factor.removed", subject: "s", details: { n: 2 } }),
        (e) => e instanceof DependencyUnavailableError && e.dependency === "postgresql",
      );
      await pg.start();
      await redis.del(streamKey(prefix));
      await r.log.record({ type: "factor.removed", subject: "s", details: { n: 3 } });
      await r.log.flush();
      assert.deepEqual(
        (await db.sql<{ n: number }>("select (details->>'n')::int as n from audit_events order by n")).map(
          (row) => row.n,
        ),
        [1, 3],
      );
    } finally {
      await r.close();
    }
  });

  it("inserts into PostgreSQL while Redis is down", async () => {
    const db = await database();
    // A Redis of the test's own, thrown away afterwards: no prefix to clean.
    const prefix = `stepgate-test:${randomBytes(6).toString("hex")}:`;
    const r = await auditReplica("r", db.url, ownRedis.url, prefix);
    try {
      await ownRedis.stop();
      const started = performance.now();
      await r.log.record({ type: "factor.removed", subject: "s", details: { n: 1 } });
      const ms = performance.now() - started;
      assert.equal(
        (await db.sql("select 1 from audit_events")).length,
        1,
        "in PostgreSQL when record resolved",
      );
      process.stdout.write(`# with Redis down, record fell back to PostgreSQL in ${ms.toFixed(0)} ms\n`);
    } finally {
      const started = performance.now();
      await r.close();
      process.stdout.write(`# closed with Redis down in ${(performance.now() - started).toFixed(0)} ms\n`);
    }
  });

  it("stores a batch delivered twice once", async () => {
    const db = await database();
    const { prefix } = freshPrefix();
    const r = await auditReplica("r", db.url, redisUrl, prefix);
    try {
      const batch = Array.from({ length: 3 }, (_, n) => ({
        id: randomBytes(16).toString("base64url"),
        type: "session.ended",
        replica: "r",
        at: new Date(),
        details: { n },
      }));
      await r.stores.audit.append(batch);
      await r.stores.audit.append([...batch, ...batch]);
      assert.equal((await db.sql("select 1 from audit_events")).length, 3);
    } finally {
      await r.close();
    }
  });
});

/** The grant id (`jti`) of a grant token. */
function jtiOf(token: string): string {
  const payload = token.split(".")[1] ?? "";
  return (JSON.parse(Buffer.from(payload, "base64url").toString()) as { jti: string }).jti;
}

describe("audit outbox across replica processes killed with SIGKILL", () => {
  let pg: OwnPostgres;
  let db: Awaited<ReturnType<typeof freshDatabase>>;
  let prefix: TestRedisPrefix;
  let redis: Redis;
  let env: Record<string, string>;
  const replicas: ReplicaProcess[] = [];
  const clients: StepgateClient[] = [];
  const basePort = replicaBasePort();
  const subject = `user-${randomBytes(6).toString("hex")}`;
  const sessionId = "s-outbox";
  const action = "payments.transfer";
  before(async () => {
    pg = await startOwnPostgres();
    db = await freshDatabase(pg);
    prefix = createTestRedisPrefix();
    redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    env = {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_POLICY_FILE: writePolicy(),
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      STEPGATE_LOG_LEVEL: "warn",
      STEPGATE_DRAIN_DELAY_MS: "0",
      STEPGATE_AUDIT_CLAIM_AFTER_MS: "1000",
      DATABASE_URL: db.url,
      DATABASE_POOL_SIZE: "4",
      REDIS_URL: redisUrl,
      REDIS_PREFIX: prefix.prefix,
    };
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
    redis.disconnect();
    await prefix.clean();
    await db.close();
    await pg.destroy();
  });
  const client = (target: string) => {
    const c = createStepgateClient({ target, caller: "payments", retry: { maxAttempts: 1 } });
    clients.push(c);
    return c;
  };
  const add = async (id: string) => {
    const r = replicaProcess(id, basePort + replicas.length, env);
    replicas.push(r);
    await r.start();
    return r;
  };
  /** The grant events stored: the grant id each names, and the event's id. */
  const grantEvents = () =>
    db.sql<{ grant_id: string; event_id: string }>(
      `select details->>'grant_id' as grant_id, event_id from audit_events
       where type in ('verify.succeeded', 'grant.issued')`,
    );

  it("stores every grant's event once: those in Redis when the replica died are drained by the next", async () => {
    const first = await add("replica-1");
    const c1 = client(first.address);
    const enrolled = await c1.factors.enrollTotp({
      subject,
      label: "Phone",
      accountName: `${subject}@example.com`,
      grant: "",
    });
    const now = () => Math.floor(Date.now() / 1000);
    await c1.factors.confirmTotp({
      subject,
      factorId: enrolled.factorId,
      code: totpCode(enrolled.secret, now()),
    });
    const challenged = await c1.stepUp.stepUp({ subject, sessionId, action });
    assert.equal(challenged.outcome.case, "challenge");
    const verified = await c1.stepUp.verify({
      challengeId: challenged.outcome.value.challengeId,
      subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: totpCode(enrolled.secret, now() + 30) } },
      idempotencyKey: `key-${randomBytes(8).toString("hex")}`,
    });
    const received: string[] = [verified.grant?.token ?? ""];

    // PostgreSQL goes away; the elevated session still gets grants, their events wait in Redis.
    await pg.stop();
    for (let round = 0; round < 10; round++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => c1.stepUp.stepUp({ subject, sessionId, action })),
      );
      for (const a of answers) {
        assert.equal(a.outcome.case, "grant");
        received.push(a.outcome.value.token);
      }
    }
    // The replica's drainer took events and cannot store them (it retries those, reading no more);
    // then it is killed.
    await until(async () => {
      const s = await outboxState(redis, prefix.prefix);
      return s.length >= 100 && s.pending > 0;
    }, "replica-1's drainer holding events it cannot store");
    const held = await outboxState(redis, prefix.prefix);
    assert.equal(await first.stop("SIGKILL"), "SIGKILL");

    await pg.start();
    await add("replica-2");
    await until(async () => (await grantEvents()).length >= received.length, "replica-2 to drain the outbox");
    await sleep(300);
    const events = await grantEvents();
    assert.equal(received.length, 101);
    assert.equal(events.length, received.length, "one event per grant received");
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, "no event stored twice");
    assert.deepEqual(
      events.map((e) => e.grant_id).sort(),
      received.map(jtiOf).sort(),
      "the events of exactly those grants",
    );
    assert.deepEqual(await outboxState(redis, prefix.prefix), { length: 0, pending: 0, byConsumer: {} });
    process.stdout.write(
      `# replica-1 held ${held.pending} of ${held.length} events (${JSON.stringify(held.byConsumer)}) when killed\n`,
    );
  });

  it("stores the event of every grant received, once, when a replica is killed mid-load", async () => {
    const [, second] = replicas;
    assert.ok(second?.running, "replica-2 of the test before");
    const third = await add("replica-3");
    const both = client(`ipv4:${second.address},${third.address}`);
    const earlier = (await grantEvents()).length;
    const received: string[] = [];
    let failed = 0;
    for (let round = 0; round < 20; round++) {
      const calls = Promise.allSettled(
        Array.from({ length: 10 }, () => both.stepUp.stepUp({ subject, sessionId, action })),
      );
      // Killed in the middle of a round, whatever it is doing: serving, appending, inserting, acknowledging.
      if (round === 6) await sleep(2).then(() => second.stop("SIGKILL"));
      for (const answer of await calls) {
        if (answer.status === "fulfilled" && answer.value.outcome.case === "grant") {
          received.push(answer.value.outcome.value.token);
        } else failed++;
      }
    }
    const wanted = new Set(received.map(jtiOf));
    await until(async () => {
      const stored = new Set((await grantEvents()).map((e) => e.grant_id));
      return [...wanted].every((jti) => stored.has(jti));
    }, "replica-3 to store every received grant's event");
    await until(async () => (await outboxState(redis, prefix.prefix)).length === 0, "the outbox drained");
    const events = await grantEvents();
    const ids = await db.sql<{ n: string; distinct_ids: string }>(
      "select count(*) as n, count(distinct event_id) as distinct_ids from audit_events",
    );
    assert.equal(ids[0]?.n, ids[0]?.distinct_ids, "no event stored twice");
    const added = events.length - earlier;
    // A call killed after its event was durable got no grant: its event may be stored, never twice.
    assert.ok(
      added >= received.length && added <= received.length + failed,
      `${added} events for ${received.length} grants`,
    );
    process.stdout.write(
      `# killed mid-load: ${received.length} grants received, ${failed} calls failed, ${added} grant events stored\n`,
    );
  });
});
