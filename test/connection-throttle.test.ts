// Per-connection backpressure through a real replica process: a connection whose calls keep being
// refused is told to open no new stream (SETTINGS_MAX_CONCURRENT_STREAMS 0) for a pause, then
// allowed again; a connection whose calls are served is never paused; and critical step-ups on
// another connection go on while one connection floods. Outcomes only: no assertion on a latency.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { callerHeader } from "@stepgate/api";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { freePort } from "@stepgate/testkit/free-port";
import { type ReplicaProcess, startReplicaProcess } from "@stepgate/testkit/replica-process";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { totpCode } from "@stepgate/testkit/totp-code";
import { newKey, newSession } from "./support/flows.ts";
import { floodConnection } from "./support/raw-flood.ts";
import { newKeyRing, testPolicy, writePolicy } from "./support/stepgate.ts";

const policy = `${testPolicy.replace("methods: [totp] }", "methods: [totp], priority: critical }")}
rate_limits:
  caller: { calls: 100000, per: 60 }
  callers:
    flooder: { calls: 10, per: 60 }
`;

describe("connections whose calls keep being refused are paused", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let replica: ReplicaProcess;
  let client: StepgateClient;
  before(async () => {
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    replica = await startReplicaProcess("replica-1", await freePort(), {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_POLICY_FILE: writePolicy(policy),
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redis.prefix,
    });
    client = createStepgateClient({ target: replica.address, caller: "payments" });
  });
  after(async () => {
    client?.close();
    await replica?.stop();
    await redis?.clean();
    await db?.drop();
  });

  it("pauses a flooding connection, lets it go on after the pause, and keeps serving the others", async (t) => {
    const subjects = await seedSubjects(client, 20);
    const flood = floodConnection(replica.address, {
      path: "/stepgate.v1.FactorService/ListFactors",
      headers: { [callerHeader]: "flooder" },
      streams: 32,
      requests: 400,
      timeoutMs: 6000,
    });
    // Critical step-ups on the client's own connection meanwhile, each to the end.
    const now = () => Math.floor(Date.now() / 1000);
    let served = 0;
    for (const s of subjects.slice(0, 10)) {
      const sessionId = newSession();
      const up = await client.stepUp.stepUp({ subject: s.subject, sessionId, action: "payments.transfer" });
      assert.equal(up.outcome.case, "challenge");
      const verified = await client.stepUp.verify({
        challengeId: up.outcome.value.challengeId,
        ...{ subject: s.subject, sessionId, action: "payments.transfer" },
        proof: { kind: { case: "totpCode", value: totpCode(s.secret, now() + 30) } },
        idempotencyKey: newKey(),
      });
      assert.ok(verified.grant?.token);
      served += 1;
    }
    const seen = await flood;
    t.diagnostic(
      `flood: ${seen.answered} answered (${seen.statuses.get("0") ?? 0} OK), ${seen.reset} reset, ` +
        `paused ${seen.pauses} times (${seen.pausedMs} ms in all); ${served} critical step-ups served`,
    );
    assert.equal(served, 10);
    assert.ok(seen.pauses >= 1, "the flooding connection was told to open no new stream");
    assert.ok(seen.resumes >= 1, "and allowed again after the pause");
    assert.ok((seen.statuses.get("8") ?? 0) > 0, "its calls were refused RESOURCE_EXHAUSTED");
  });

  it("never pauses a connection whose calls are served", async () => {
    const seen = await floodConnection(replica.address, {
      path: "/stepgate.v1.FactorService/ListFactors",
      headers: { [callerHeader]: "payments" },
      streams: 8,
      requests: 1000,
    });
    assert.equal(seen.statuses.get("0"), 1000, JSON.stringify([...seen.statuses]));
    assert.equal(seen.pauses, 0);
  });
});

describe("fairness between callers on a saturated replica", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let replica: ReplicaProcess;
  before(async () => {
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    replica = await startReplicaProcess("replica-2", await freePort(), {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_POLICY_FILE: writePolicy(policy),
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redis.prefix,
      // Two slots and a short line: most of what arrives at once must wait or be shed.
      STEPGATE_ADMISSION_INITIAL_LIMIT: "2",
      STEPGATE_ADMISSION_MIN_LIMIT: "2",
      STEPGATE_ADMISSION_MAX_LIMIT: "2",
      STEPGATE_ADMISSION_MAX_QUEUE: "16",
      // No pauses here: this is about the queue's turns between callers.
      STEPGATE_THROTTLE_REFUSALS: "0",
    });
  });
  after(async () => {
    await replica?.stop();
    await redis?.clean();
    await db?.drop();
  });

  it("serves a light caller's calls beside a heavy caller's flood of the same priority", async (t) => {
    const listing = (caller: string, streams: number, requests: number) =>
      floodConnection(replica.address, {
        path: "/stepgate.v1.FactorService/ListFactors",
        headers: { [callerHeader]: caller },
        streams,
        requests,
      });
    const [heavy, light] = await Promise.all([listing("payments", 64, 3000), listing("reports", 2, 200)]);
    const okShare = (seen: Awaited<typeof heavy>) =>
      (seen.statuses.get("0") ?? 0) / Math.max(1, seen.answered);
    t.diagnostic(
      `heavy: ${(100 * okShare(heavy)).toFixed(0)}% of ${heavy.answered} served; light: ${(100 * okShare(light)).toFixed(0)}% of ${light.answered}`,
    );
    // Taken from each caller in turn, a caller with nothing running keeps its turn, and a full line
    // sheds the flood's newest: the light caller is served, the flood is what is shed.
    assert.ok(okShare(light) >= 0.75, `light caller served ${okShare(light)}`);
    assert.ok(okShare(heavy) < okShare(light) / 2, "the flood is what is shed");
  });
});
