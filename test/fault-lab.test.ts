// The fault-injection lab itself (packages/testkit): the TCP proxy that cuts the network between
// replicas and a store, PostgreSQL and Redis of the test's own, and the flow load that measures what
// a fault does. Loopback only; every wait is bounded.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient } from "@stepgate/client";
import { totpCode as serverTotpCode } from "@stepgate/server/factors/totp";
import { replicaTrailer as serverReplicaTrailer } from "@stepgate/server/rpc/guard";
import { printFlowLoadReport, replicaTrailer, runFlowLoad } from "@stepgate/testkit/flow-load";
import {
  createTimelineRecorder,
  timelineStrip,
  timeToDetect,
  timeToRecover,
} from "@stepgate/testkit/flow-timeline";
import { freePort } from "@stepgate/testkit/free-port";
import { isAlive } from "@stepgate/testkit/orphan-reaper";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { type OwnRedis, startOwnRedis } from "@stepgate/testkit/own-redis";
import { type ReplicaProcess, replicaProcess } from "@stepgate/testkit/replica-process";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { createTcpProxy, type TcpProxy } from "@stepgate/testkit/tcp-proxy";
import { totpCode } from "@stepgate/testkit/totp-code";
import { Redis } from "ioredis";
import pg from "pg";
import { newKeyRing, writePolicy } from "./support/stepgate.ts";

/** A pg client that reports connection errors to the test instead of crashing the process. */
function pgClient(config: pg.ClientConfig): { client: pg.Client; errors: string[] } {
  const client = new pg.Client(config);
  const errors: string[] = [];
  client.on("error", (e: NodeJS.ErrnoException) => errors.push(e.code ?? e.message));
  return { client, errors };
}

/** An ioredis client that never retries on its own, with a 500 ms command timeout, or none for `null`. */
function redisClient(url: string, commandTimeout: number | null = 500): Redis {
  const redis = new Redis(url, {
    ...(commandTimeout === null ? {} : { commandTimeout }),
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  return redis;
}

/** How long `promise` takes to settle, in ms, and how: "ok" or the error's code (else its message). */
async function timed(promise: Promise<unknown>): Promise<{ ms: number; outcome: string }> {
  const t0 = performance.now();
  const outcome = await promise.then(
    () => "ok",
    (e: NodeJS.ErrnoException) => e.code ?? e.message,
  );
  return { ms: performance.now() - t0, outcome };
}

describe("fault lab", () => {
  let postgres: OwnPostgres;
  let redis: OwnRedis;
  before(async () => {
    [postgres, redis] = await Promise.all([startOwnPostgres(), startOwnRedis()]);
  });
  after(async () => {
    await Promise.all([postgres?.destroy(), redis?.destroy()]);
  });

  it("computes the same TOTP codes and replica header as the server", () => {
    const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    for (const t of [0, 59, 1_111_111_109, Math.floor(Date.now() / 1000)]) {
      assert.equal(totpCode(secret, t), serverTotpCode(secret, t), `code at ${t}`);
    }
    assert.equal(replicaTrailer, serverReplicaTrailer);
  });

  it("computes the time to detect and to recover a fault from the timeline", () => {
    const recorder = createTimelineRecorder(250);
    for (let ms = 0; ms < 3000; ms += 50) recorder.record(ms, ms < 1100 || ms >= 2100);
    recorder.record(2400, false); // a straggler
    const timeline = recorder.snapshot();
    assert.equal(timeline.buckets.length, 12);
    assert.equal(timeToDetect(timeline, 1000), 250, "the bucket 1000-1250 holds the first failure");
    assert.equal(timeToRecover(timeline, 2000), 500, "2500-2750 is the first bucket with no failure");
    assert.equal(timeToDetect(timeline, 2900), undefined);
    assert.equal(timelineStrip(timeline, [1000, 2000]), "....|!xxx|!!..");
  });

  describe("a TCP proxy in front of PostgreSQL and Redis", () => {
    let pgProxy: TcpProxy;
    let redisProxy: TcpProxy;
    let pgUrl: string;
    let redisUrl: string;
    before(async () => {
      pgProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: postgres.port } });
      redisProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: redis.port } });
      pgUrl = pgProxy.rewriteUrl(postgres.url);
      redisUrl = redisProxy.rewriteUrl(redis.url);
    });
    after(async () => {
      await Promise.all([pgProxy.close(), redisProxy.close()]);
    });

    it("passes bytes both ways and counts them", async () => {
      assert.equal(pgUrl, `postgresql://postgres@127.0.0.1:${pgProxy.port}/postgres`);
      const { client } = pgClient({ connectionString: pgUrl });
      await client.connect();
      const { rows } = await client.query<{ answer: number }>("select 41 + 1 as answer");
      assert.deepEqual(rows, [{ answer: 42 }]);
      await client.end();
      const r = redisClient(redisUrl);
      assert.equal(await r.set("lab:key", "value"), "OK");
      assert.equal(await r.get("lab:key"), "value");
      r.disconnect();
      const c = pgProxy.counters;
      assert.equal(c.connectionsAccepted, 1);
      assert.ok(c.bytesToTarget > 0 && c.bytesFromTarget > 0, JSON.stringify(c));
      assert.equal(c.bytesDropped, 0);
      assert.ok(redisProxy.counters.bytesFromTarget > 0);
    });

    it("refuse(): open connections are reset and new ones refused, at once", async () => {
      const open = pgClient({ connectionString: pgUrl });
      await open.client.connect();
      await pgProxy.refuse();
      const onOpen = await timed(open.client.query("select 1"));
      assert.match(onOpen.outcome, /ECONNRESET|Connection terminated/);
      const fresh = pgClient({ connectionString: pgUrl, connectionTimeoutMillis: 2000 });
      const onFresh = await timed(fresh.client.connect());
      assert.equal(onFresh.outcome, "ECONNREFUSED");
      assert.ok(onOpen.ms < 200 && onFresh.ms < 200, `failed fast: ${onOpen.ms} ms, ${onFresh.ms} ms`);
      assert.equal(pgProxy.counters.connectionsOpen, 0);
      process.stdout.write(
        `# refuse: open pg connection ${onOpen.outcome} in ${onOpen.ms.toFixed(1)} ms, ` +
          `new one ${onFresh.outcome} in ${onFresh.ms.toFixed(1)} ms\n`,
      );
      await pgProxy.pass();
      const again = pgClient({ connectionString: pgUrl });
      await again.client.connect();
      await again.client.query("select 1");
      await again.client.end();
    });

    it("blackhole(): calls hang until the client's own timeout, and the proxy holds no byte", async () => {
      const withTimeout = pgClient({ connectionString: pgUrl, query_timeout: 500 });
      const noTimeout = pgClient({ connectionString: pgUrl });
      await Promise.all([withTimeout.client.connect(), noTimeout.client.connect()]);
      const r = redisClient(redisUrl);
      const rNoTimeout = redisClient(redisUrl, null);
      await Promise.all([r.ping(), rNoTimeout.ping()]);
      const resetsBefore = pgProxy.counters.connectionsReset;
      await Promise.all([pgProxy.blackhole(), redisProxy.blackhole()]);
      const hanging = timed(noTimeout.client.query("select 'never' as x"));
      const hangingRedis = timed(rNoTimeout.get("lab:key"));
      const [query, command, connecting] = await Promise.all([
        timed(withTimeout.client.query("select 1")),
        timed(r.get("lab:key")),
        timed(pgClient({ connectionString: pgUrl, connectionTimeoutMillis: 500 }).client.connect()),
      ]);
      // A raw client floods the blackhole: all of it is dropped, none of it queued.
      const flood = connect({ host: "127.0.0.1", port: pgProxy.port });
      flood.on("error", () => {});
      await new Promise<void>((resolve) => flood.write(Buffer.alloc(4 << 20), () => resolve()));
      await sleep(100);
      const counters = pgProxy.counters;
      flood.destroy();
      process.stdout.write(
        `# blackhole: pg query_timeout=500 -> "${query.outcome}" after ${Math.round(query.ms)} ms; ` +
          `pg connectionTimeoutMillis=500 -> "${connecting.outcome}" after ${Math.round(connecting.ms)} ms; ` +
          `ioredis commandTimeout=500 -> "${command.outcome}" after ${Math.round(command.ms)} ms; ` +
          `dropped ${counters.bytesDropped} bytes, buffered ${counters.bytesBuffered}\n`,
      );
      for (const t of [query, command, connecting]) {
        assert.notEqual(t.outcome, "ok");
        assert.ok(t.ms >= 450 && t.ms < 1500, `${t.outcome} after ${t.ms} ms`);
      }
      assert.equal(query.outcome, "Query read timeout");
      assert.equal(command.outcome, "Command timed out");
      assert.ok(counters.bytesDropped >= 4 << 20, `dropped ${counters.bytesDropped}`);
      assert.equal(counters.bytesBuffered, 0);
      assert.equal(redisProxy.counters.bytesBuffered, 0);
      assert.equal(counters.connectionsReset, resetsBefore, "a blackhole resets nothing");
      // Without a timeout of their own, clients wait for as long as the partition lasts.
      const pending = await Promise.race([hanging.then(() => "settled"), sleep(200).then(() => "pending")]);
      assert.equal(pending, "pending", "a pg query without a timeout hangs");
      assert.equal(
        await Promise.race([hangingRedis.then(() => "settled"), sleep(0).then(() => "pending")]),
        "pending",
        "an ioredis command without a timeout hangs",
      );

      // pass(): connections that lost bytes are reset; clients that reconnect work again.
      await Promise.all([pgProxy.pass(), redisProxy.pass()]);
      const ended = await hanging;
      assert.match(ended.outcome, /ECONNRESET|Connection terminated/);
      const resent = await Promise.race([
        hangingRedis,
        sleep(2000).then(() => ({ ms: 0, outcome: "pending" })),
      ]);
      process.stdout.write(
        `# after pass(): the hung pg query ended with "${ended.outcome}"; ` +
          `the hung ioredis command ended with "${resent.outcome}"\n`,
      );
      const { client } = pgClient({ connectionString: pgUrl });
      await client.connect();
      assert.deepEqual((await client.query<{ x: number }>("select 7 as x")).rows, [{ x: 7 }]);
      await client.end();
      const fresh = redisClient(redisUrl);
      assert.equal(await fresh.get("lab:key"), "value");
      for (const c of [r, rNoTimeout, fresh]) c.disconnect();
      await Promise.all([withTimeout.client.end(), noTimeout.client.end()].map((p) => p.catch(() => {})));
    });
  });

  it("own PostgreSQL keeps committed data across a SIGKILL crash and a restart", async () => {
    const { client } = pgClient({ connectionString: postgres.url });
    await client.connect();
    await client.query("create table lab_kept (id int primary key, note text)");
    await client.query("insert into lab_kept values (1, 'before the crash')");
    const pid = postgres.pid;
    assert.ok(pid !== undefined);
    const t0 = performance.now();
    assert.equal(await postgres.stop("SIGKILL"), "SIGKILL");
    const stopMs = performance.now() - t0;
    assert.equal(postgres.running, false);
    assert.equal(isAlive(pid), false, "the postmaster is gone");
    await client.end().catch(() => {});
    const t1 = performance.now();
    await postgres.start();
    const startMs = performance.now() - t1;
    assert.notEqual(postgres.pid, pid);
    const again = pgClient({ connectionString: postgres.url });
    await again.client.connect();
    const { rows } = await again.client.query("select id, note from lab_kept");
    assert.deepEqual(rows, [{ id: 1, note: "before the crash" }]);
    await again.client.end();
    // A smart shutdown with no session open, and a start: same port, same data.
    assert.equal(await postgres.stop("SIGTERM"), "SIGTERM");
    await postgres.start();
    process.stdout.write(
      `# own PostgreSQL: SIGKILL took ${Math.round(stopMs)} ms, the restart (crash recovery) ${Math.round(startMs)} ms\n`,
    );
  });

  it("own Redis comes back empty after a restart, whatever the signal", async () => {
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const r = redisClient(redis.url);
      await r.set("lab:gone", "soon");
      r.disconnect();
      const pid = redis.pid;
      assert.equal(await redis.stop(signal), signal);
      assert.equal(redis.running, false);
      assert.equal(pid !== undefined && isAlive(pid), false);
      await redis.start();
      const after = redisClient(redis.url);
      assert.equal(await after.dbsize(), 0, `empty after ${signal}`);
      after.disconnect();
    }
  });

  describe("a flow load through three replicas", () => {
    const replicas: ReplicaProcess[] = [];
    let pgProxy: TcpProxy;
    let redisProxy: TcpProxy;
    before(async () => {
      pgProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: postgres.port } });
      redisProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: redis.port } });
      const env = {
        STEPGATE_HOST: "127.0.0.1",
        STEPGATE_POLICY_FILE: writePolicy(),
        STEPGATE_INSECURE_DEV: "1",
        STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
        STEPGATE_LOG_LEVEL: "warn",
        STEPGATE_DRAIN_DELAY_MS: "0",
        STEPGATE_SHUTDOWN_GRACE_MS: "2000",
        DATABASE_URL: pgProxy.rewriteUrl(postgres.url),
        DATABASE_POOL_SIZE: "5",
        REDIS_URL: redisProxy.rewriteUrl(redis.url),
        REDIS_PREFIX: "fault-lab:",
      };
      for (let i = 1; i <= 3; i++) {
        replicas.push(
          replicaProcess(`replica-${i}`, await freePort(), env, {
            keepLines: "after-serving",
            maxLines: 200,
          }),
        );
      }
      // The first alone migrates and creates the signing key; the other two start together.
      await replicas[0]?.start();
      await Promise.all(replicas.slice(1).map((r) => r.start()));
    });
    after(async () => {
      await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
      await Promise.all([pgProxy?.close(), redisProxy?.close()]);
    });

    it("runs 5 s of open-loop flows with no failure and no replay while the stores are healthy", async () => {
      const target = `ipv4:${replicas.map((r) => r.address).join(",")}`;
      const client = createStepgateClient({ target, caller: "payments" });
      const t0 = performance.now();
      const subjects = await seedSubjects(client, 110);
      const seedMs = performance.now() - t0;
      const report = await runFlowLoad({
        client: target,
        subjects,
        ratePerSecond: 20,
        durationMs: 5000,
        drainMs: 5000,
      });
      client.close();
      printFlowLoadReport("fault lab, healthy stores", report);
      process.stdout.write(`# seeding 110 subjects took ${Math.round(seedMs)} ms\n`);
      assert.equal(report.started, 100);
      assert.equal(report.skippedNoSubject, 0);
      assert.equal(report.unfinished, 0);
      assert.equal(report.flowsFailed, 0);
      for (const [rpc, s] of Object.entries(report.rpcs)) assert.deepEqual(s.failures, {}, rpc);
      // Every 10th start replays a code accepted in the current step (a normal flow runs instead
      // when there is none, e.g. just after a step boundary).
      const probes = report.rpcs.ReplayProbe;
      assert.ok(probes.calls >= 5 && probes.calls <= 10, `${probes.calls} replay probes`);
      assert.equal(probes.ok, probes.calls, "each refused as CODE_REPLAYED");
      assert.equal(report.replays, 0);
      assert.equal(report.flowsOk, 100 - probes.calls);
      assert.equal(report.rpcs.CheckGrant.ok, report.flowsOk);
      assert.equal(Object.keys(report.byReplica).length, 3, "every replica answered");
      assert.equal(report.timeToDetectMs, undefined);
      assert.ok(report.timeline.buckets.every((b) => b.failed === 0));
      assert.ok(
        pgProxy.counters.bytesToTarget > 0 && redisProxy.counters.bytesToTarget > 0,
        "through the proxies",
      );
      for (const r of replicas) assert.equal(r.running, true, `${r.id} still runs`);
    });
  });
});
