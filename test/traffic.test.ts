// Traffic shaping on real replica processes over loopback gRPC: fleet-wide rate limits counted in
// one Redis (and by each replica alone, with its share, while that Redis is down), calls shed by a
// replica with one slot (OVERLOADED, RetryInfo, grpc-retry-pushback-ms) and what grpc-js clients
// do with that pushback, and admission by priority. Outcomes only: no assertion on a latency.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { callerHeader, errorDomain } from "@stepgate/api";
import { ListFactorsRequestSchema } from "@stepgate/api/gen/stepgate/v1/factor_service_pb";
import { createStepgateClient, type RetryOptions, type StepgateClient } from "@stepgate/client";
import { retryPushbackTrailer } from "@stepgate/server/rpc/traffic-shaping";
import { type OwnRedis, startOwnRedis } from "@stepgate/testkit/own-redis";
import type { ReplicaProcess } from "@stepgate/testkit/replica-process";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { totpCode } from "@stepgate/testkit/totp-code";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { type Failure, failure } from "./support/errors.ts";
import { newKey, newSession, newSubject } from "./support/flows.ts";
import { plainUnary, richDetails, type Seen } from "./support/plain-call.ts";
import { testPolicy, writePolicy } from "./support/stepgate.ts";

const listFactorsPath = "/stepgate.v1.FactorService/ListFactors";

/** The test policy with payments.transfer critical, and `rateLimits` (a `rate_limits:` section or ""). */
const policyWith = (rateLimits: string) =>
  `${testPolicy.replace("methods: [totp] }", "methods: [totp], priority: critical }")}${rateLimits}\n`;

// Windows of 60 s: a fixed window starts at a key's first call, and each test below ends well
// within one, even on a loaded machine, so no window rolls over while it counts.
const windowMs = 60_000;
const fleetLimits = `
rate_limits:
  subject: { calls: 12, per: 60 }
  caller: { calls: 1000, per: 60 }
  callers:
    reports: { calls: 20, per: 60 }
    exports: { calls: 12, per: 60 }
    batch: { calls: 30, per: 60 }
    bulk: { calls: 800, per: 60 }
    ledger: { calls: 4, per: 60 }
    crawler: { calls: 5, per: 60 }
`;

/** Undefined if `call` succeeded, else what the rich error model says about its failure. */
const settle = (call: Promise<unknown>): Promise<Failure | undefined> =>
  call.then(
    () => undefined,
    (error: unknown) => failure(Promise.reject(error)),
  );

/** Asserts a refusal by the rate limit `limit`: RESOURCE_EXHAUSTED RATE_LIMITED with a RetryInfo within the window. */
function assertRateLimited(f: Failure | undefined, limit: string): void {
  assert.ok(f, `expected a refusal by the ${limit} limit, the call succeeded`);
  assert.equal(Code[f.code], Code[Code.ResourceExhausted], `status (reason ${f.reason}: ${f.message})`);
  assert.equal(f.reason, "RATE_LIMITED");
  assert.equal(f.metadata.limit, limit);
  assert.ok(f.retryDelayMs !== undefined, "RetryInfo");
  assert.ok(
    f.retryDelayMs > 0 && f.retryDelayMs <= windowMs,
    `RetryInfo ${f.retryDelayMs} ms, within the window`,
  );
}

/** Waits (at most 15 s) for a line of `replica`, from line `from` on, that includes every one of `parts`. */
async function waitForLine(replica: ReplicaProcess, from: number, parts: string[]): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (replica.lines.slice(from).some((line) => parts.every((p) => line.includes(p)))) return;
    await sleep(50);
  }
  assert.fail(`${replica.id} never logged ${parts.join(" ")}`);
}

/** The per-call lines (rpc/call-accounting.ts) of `replica` from line `from` on. */
function callLines(replica: ReplicaProcess, from: number): { rpc: string; status: string }[] {
  const calls: { rpc: string; status: string }[] = [];
  for (const line of replica.lines.slice(from)) {
    let parsed: { msg?: string; rpc?: string; status?: string };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue;
    }
    if (parsed.msg === "call" || parsed.msg === "call failed") {
      calls.push({ rpc: parsed.rpc ?? "", status: parsed.status ?? "" });
    }
  }
  return calls;
}

/** The clients a suite makes, closed after it. */
function clientPool() {
  const clients: StepgateClient[] = [];
  return {
    /** A client of `caller` on one replica only, with no retries of any kind: every refusal shows. */
    pinned(replica: ReplicaProcess, caller: string): StepgateClient {
      const client = createStepgateClient({
        target: replica.address,
        caller,
        retry: { maxAttempts: 1 },
        replicaRetryRounds: 0,
      });
      clients.push(client);
      return client;
    },
    /** A client of `caller` at `target` with the client package's channel retries, as `retry` sets them. */
    retrying(target: string, caller: string, retry: RetryOptions = {}): StepgateClient {
      const client = createStepgateClient({ target, caller, retry, replicaRetryRounds: 0 });
      clients.push(client);
      return client;
    },
    closeAll() {
      for (const c of clients.splice(0)) c.close();
    },
  };
}

describe("fleet-wide rate limits, three replica processes on one Redis", () => {
  let redis: OwnRedis;
  let cluster: Cluster;
  let replicas: ReplicaProcess[];
  const clients = clientPool();
  before(async () => {
    // A Redis of the test's own, so one test can kill it.
    redis = await startOwnRedis();
    cluster = await startCluster({
      size: 3,
      env: {
        STEPGATE_POLICY_FILE: writePolicy(policyWith(fleetLimits)),
        REDIS_URL: redis.url,
        STEPGATE_FLEET_SIZE: "3",
        STEPGATE_HEALTH_INTERVAL_MS: "500",
        // Room for every call at once: what is refused here, only the rate limits refused.
        STEPGATE_ADMISSION_INITIAL_LIMIT: "500",
        STEPGATE_ADMISSION_MIN_LIMIT: "500",
      },
    });
    replicas = cluster.replicas;
  });
  after(async () => {
    clients.closeAll();
    await cluster?.close();
    await redis?.destroy();
  });

  it("lets exactly a caller's quota through, however its calls spread, while another caller goes on", async () => {
    const reports = replicas.map((r) => clients.pinned(r, "reports"));
    const payments = replicas.map((r) => clients.pinned(r, "payments"));
    // `reports` (20 per window) floods with 60 calls at once, 20 on each replica; `payments`
    // (the default quota) sends 15 among them.
    const listing = (c: StepgateClient, n: number) =>
      Array.from({ length: n }, () => settle(c.factors.listFactors({ subject: newSubject() })));
    const [flood, others] = await Promise.all([
      Promise.all(reports.flatMap((c) => listing(c, 20))),
      Promise.all(payments.flatMap((c) => listing(c, 5))),
    ]);
    const refused = flood.filter((f) => f !== undefined);
    assert.equal(flood.length - refused.length, 20, "exactly the quota passes, fleet-wide");
    for (const f of refused) assertRateLimited(f, "caller");
    assert.deepEqual(
      others.filter((f) => f !== undefined),
      [],
      "the other caller is not starved by the flood",
    );
    // Spent on every replica, whichever served the 20.
    for (const c of reports)
      assertRateLimited(await settle(c.factors.listFactors({ subject: "u" })), "caller");
    for (const c of payments) assert.equal(await settle(c.factors.listFactors({ subject: "u" })), undefined);
  });

  it("leases a large quota in blocks: the fleet never passes it, and at most a block per replica stays unused", async (t) => {
    // 800 per window: leased 8 calls at a time (1%), from memory between leases.
    const bulk = replicas.map((r) => clients.pinned(r, "bulk"));
    const results = await Promise.all(
      bulk.flatMap((c) =>
        Array.from({ length: 8 }, async () => {
          let allowed = 0;
          let refused = 0;
          for (let i = 0; i < 50; i++) {
            const f = await settle(c.factors.listFactors({ subject: "u" }));
            if (f === undefined) allowed += 1;
            else {
              assertRateLimited(f, "caller");
              refused += 1;
            }
          }
          return { allowed, refused };
        }),
      ),
    );
    const allowed = results.reduce((n, r) => n + r.allowed, 0);
    t.diagnostic(`bulk: ${allowed} of 1200 calls let through by three replicas, quota 800`);
    assert.ok(allowed <= 800, `${allowed} let through: past the quota`);
    // Each replica may hold a lease and the next one it took ahead: 1.5 blocks.
    assert.ok(allowed >= 800 - 3 * 12, `${allowed} let through: too much leased and unused`);
  });

  it("shares one count: a single replica may use the fleet's whole quota, then every replica refuses", async () => {
    const [first, ...rest] = replicas.map((r) => clients.pinned(r, "exports"));
    assert.ok(first);
    // 12 per window; a replica counting alone would stop at its share, 4.
    for (let i = 0; i < 12; i++) {
      assert.equal(
        await settle(first.factors.listFactors({ subject: "u" })),
        undefined,
        `call ${i + 1} of 12`,
      );
    }
    assertRateLimited(await settle(first.factors.listFactors({ subject: "u" })), "caller");
    for (const c of rest) assertRateLimited(await settle(c.factors.listFactors({ subject: "u" })), "caller");
  });

  it("counts a subject's StepUp and Verify calls on every replica against one limit", async () => {
    const [a, b, c] = replicas.map((r) => clients.pinned(r, "payments")) as [
      StepgateClient,
      StepgateClient,
      StepgateClient,
    ];
    const ring = [a, b, c];
    const subject = newSubject();
    const action = "account.change_email";
    // Recovery codes: one per flow, where TOTP would give one code per 30 s step.
    const { codes } = await a.factors.createRecoveryCodes({ subject, grant: "" });
    // 12 per window: six StepUp -> Verify flows, each StepUp on one replica and its Verify on the next.
    for (let i = 0; i < 6; i++) {
      const sessionId = newSession();
      const stepUp = await (ring[i % 3] as StepgateClient).stepUp.stepUp({ subject, sessionId, action });
      assert.equal(stepUp.outcome.case, "challenge", `flow ${i + 1}`);
      const verified = await (ring[(i + 1) % 3] as StepgateClient).stepUp.verify({
        challengeId: stepUp.outcome.value.challengeId,
        subject,
        sessionId,
        action,
        proof: { kind: { case: "recoveryCode", value: codes[i] ?? "" } },
        idempotencyKey: newKey(),
      });
      assert.ok(verified.grant?.token, `flow ${i + 1} grants`);
    }
    // The 13th StepUp or Verify of the subject is refused, on any replica, before any work.
    for (const client of ring) {
      assertRateLimited(
        await settle(client.stepUp.stepUp({ subject, sessionId: newSession(), action })),
        "subject",
      );
    }
    const verify = c.stepUp.verify({
      challengeId: "c",
      subject,
      sessionId: newSession(),
      action,
      proof: { kind: { case: "recoveryCode", value: codes[6] ?? "" } },
      idempotencyKey: newKey(),
    });
    assertRateLimited(await settle(verify), "subject");
    // Another subject of the same caller is not held back, nor are the subject's other calls.
    const other = await b.stepUp.stepUp({ subject: newSubject(), sessionId: newSession(), action });
    assert.equal(other.outcome.case, "enrollmentRequired");
    assert.equal((await c.factors.listFactors({ subject })).factors.length, 1);
  });

  it("a caller over its quota does not spend a subject's allowance, even with 120 calls at once", async () => {
    const crawler = replicas.map((r) => clients.pinned(r, "crawler"));
    // `crawler` spends its quota (5 per window), then floods one subject with 120 StepUps at once,
    // 40 on each replica. None of them may count against the subject.
    for (let i = 0; i < 5; i++)
      await (crawler[i % 3] as StepgateClient).factors.listFactors({ subject: "u" });
    const subject = newSubject();
    const action = "account.change_email";
    const flood = await Promise.all(
      crawler.flatMap((c) =>
        Array.from({ length: 40 }, () =>
          settle(c.stepUp.stepUp({ subject, sessionId: newSession(), action })),
        ),
      ),
    );
    for (const f of flood) assertRateLimited(f, "caller");
    // The subject's own calls (12 per window) all go through, on every replica.
    const payments = replicas.map((r) => clients.pinned(r, "payments"));
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      const client = payments[i % 3] as StepgateClient;
      const f = await settle(client.stepUp.stepUp({ subject, sessionId: newSession(), action }));
      outcomes.push(f === undefined ? "OK" : `${f.reason} ${f.metadata.limit}`);
    }
    assert.deepEqual(
      outcomes,
      outcomes.map(() => "OK"),
      "the subject's 12 calls pass",
    );
    const [first] = payments;
    assert.ok(first);
    assertRateLimited(
      await settle(first.stepUp.stepUp({ subject, sessionId: newSession(), action })),
      "subject",
    );
  });

  it("with Redis down, each replica counts alone with its share; refusals keep RATE_LIMITED and RetryInfo", async () => {
    const from = replicas.map((r) => r.lines.length);
    assert.equal(await redis.stop("SIGKILL"), "SIGKILL");
    // Every replica's Redis circuit opens: counting is local from then on, and costs no wait.
    await Promise.all(replicas.map((r, i) => waitForLine(r, from[i] ?? 0, ['"dependency down"', '"redis"'])));
    // `batch`: 30 per window, a third (10) per replica while each counts alone. 15 calls on each
    // replica at once, each with a deadline: none may hang, and none fails otherwise.
    const batch = replicas.map((r) => clients.pinned(r, "batch"));
    const perReplica = await Promise.all(
      batch.map((client) =>
        Promise.all(
          Array.from({ length: 15 }, () =>
            settle(client.factors.listFactors({ subject: newSubject() }, { timeoutMs: 5000 })),
          ),
        ),
      ),
    );
    for (const [i, outcomes] of perReplica.entries()) {
      const refused = outcomes.filter((f) => f !== undefined);
      assert.equal(outcomes.length - refused.length, 10, `replica-${i + 1} lets its share through`);
      for (const f of refused) assertRateLimited(f, "caller");
    }
  });

  it("counts in Redis again once it is back: the fleet shares one quota", async () => {
    const from = replicas.map((r) => r.lines.length);
    await redis.start();
    await Promise.all(replicas.map((r, i) => waitForLine(r, from[i] ?? 0, ['"dependency up"', '"redis"'])));
    // `ledger`: 4 per window. Two calls on each replica in turn: 4 pass in all, where replicas
    // counting alone (2 each) would let all 6 through.
    const ledger = replicas.map((r) => clients.pinned(r, "ledger"));
    const outcomes: (Failure | undefined)[] = [];
    for (let round = 0; round < 2; round++) {
      for (const client of ledger) outcomes.push(await settle(client.factors.listFactors({ subject: "u" })));
    }
    assert.deepEqual(
      outcomes.map((f) => (f === undefined ? "OK" : f.reason)),
      ["OK", "OK", "OK", "OK", "RATE_LIMITED", "RATE_LIMITED"],
    );
    for (const f of outcomes.slice(4)) assertRateLimited(f, "caller");
  });
});

const bytes = (b: Buffer) => b;

/** One ListFactors call on `client`, a plain grpc-js client. */
const plainListFactors = (client: grpc.Client, caller: string) =>
  plainUnary(
    client,
    listFactorsPath,
    ListFactorsRequestSchema,
    { subject: "u" },
    { caller, deadlineMs: 10_000 },
  );

/** One attempt (of a call the client may retry) that the recorder forwarded. */
interface Attempt {
  /** The call's `x-probe` request header: which call of the test this attempt belongs to. */
  probe: string;
  /** The client's `grpc-previous-rpc-attempts` header: 0 for a first attempt. */
  previous: number;
  /** When the attempt reached the recorder, and when its status left it (performance.now(), ms). */
  arrivedAt: number;
  answeredAt: number;
  code: grpc.status;
  /** The replica's `grpc-retry-pushback-ms` trailer, if any. */
  pushbackMs: number | undefined;
}

// Trailers the recorder hands on: everything but the transport's own.
const transportKeys = new Set([
  "content-type",
  "date",
  "grpc-encoding",
  "grpc-accept-encoding",
  "user-agent",
]);

/**
 * A gRPC hop in front of one replica for ListFactors: every attempt a client makes passes it, and it
 * records when each arrived and when its status (with the replica's trailers, unchanged) left. A
 * client cannot send an attempt before it has the previous one's status, so the time from a status
 * leaving to the next attempt arriving is at least what the client waited.
 */
async function startAttemptRecorder(upstream: string) {
  const attempts: Attempt[] = [];
  const upstreamClient = new grpc.Client(upstream, grpc.credentials.createInsecure());
  const server = new grpc.Server();
  const method = {
    path: listFactorsPath,
    requestStream: false,
    responseStream: false,
    requestSerialize: bytes,
    requestDeserialize: bytes,
    responseSerialize: bytes,
    responseDeserialize: bytes,
  };
  const forward: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
    const arrivedAt = performance.now();
    const outgoing = new grpc.Metadata();
    for (const value of call.metadata.get(callerHeader)) outgoing.add(callerHeader, value);
    let response: Buffer | undefined;
    const upstreamCall = upstreamClient.makeUnaryRequest(
      listFactorsPath,
      bytes,
      bytes,
      call.request,
      outgoing,
      { deadline: call.getDeadline() },
      (_error, value) => {
        response = value;
      },
    );
    upstreamCall.on("status", (status: grpc.StatusObject) => {
      const trailers = new grpc.Metadata();
      for (const key of Object.keys(status.metadata.getMap())) {
        if (transportKeys.has(key)) continue;
        for (const value of status.metadata.get(key)) trailers.add(key, value);
      }
      const [pushback] = status.metadata.get(retryPushbackTrailer);
      attempts.push({
        probe: String(call.metadata.get("x-probe")[0] ?? ""),
        previous: Number(call.metadata.get("grpc-previous-rpc-attempts")[0] ?? 0),
        arrivedAt,
        answeredAt: performance.now(),
        code: status.code,
        pushbackMs: pushback === undefined ? undefined : Number(pushback),
      });
      if (status.code === grpc.status.OK) callback(null, response, trailers);
      else callback({ code: status.code, details: status.details, metadata: trailers });
    });
  };
  server.addService({ ListFactors: method } as grpc.ServiceDefinition, { ListFactors: forward });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    attempts,
    close() {
      server.forceShutdown();
      upstreamClient.close();
    },
  };
}

/**
 * Keeps a one-slot replica busy: CreateRecoveryCodes (ten scrypt hashes, on the thread pool) for a
 * fresh subject each time, one after the other, and again a moment later when it was itself shed.
 * Runs until `stop()` or 30 s or 400 calls, whichever comes first.
 */
function holdTheSlot(client: StepgateClient) {
  let stopped = false;
  let served = 0;
  const until = performance.now() + 30_000;
  const running = (async () => {
    for (let i = 0; i < 400 && !stopped && performance.now() < until; i++) {
      const f = await settle(client.factors.createRecoveryCodes({ subject: newSubject(), grant: "" }));
      if (f === undefined) served += 1;
      else await sleep(2);
    }
  })();
  return {
    /** Resolves once the slot has been held by `n` calls (at most 15 s). */
    async warmedUp(n: number) {
      for (let i = 0; i < 300 && served < n; i++) await sleep(50);
      assert.ok(served >= n, `the holder got the slot ${served} times`);
    },
    async stop() {
      stopped = true;
      await running;
    },
  };
}

describe("admission control on replicas with a single slot", () => {
  let cluster: Cluster;
  /** One slot, no queue: whatever finds the slot taken is shed at once. */
  let noQueue: ReplicaProcess;
  /** One slot and a queue of 16, taken in priority order. */
  let queued: ReplicaProcess;
  const clients = clientPool();
  before(async () => {
    const oneSlot = {
      STEPGATE_ADMISSION_INITIAL_LIMIT: "1",
      STEPGATE_ADMISSION_MIN_LIMIT: "1",
      STEPGATE_ADMISSION_MAX_LIMIT: "1",
    };
    cluster = await startCluster({
      size: 2,
      env: { STEPGATE_POLICY_FILE: writePolicy(policyWith("")), ...oneSlot },
      replicaEnv: {
        "replica-1": { STEPGATE_ADMISSION_MAX_QUEUE: "0" },
        "replica-2": { STEPGATE_ADMISSION_MAX_QUEUE: "16" },
      },
    });
    [noQueue, queued] = cluster.replicas as [ReplicaProcess, ReplicaProcess];
  });
  after(async () => {
    clients.closeAll();
    await cluster?.close();
  });

  it("sheds what its slot cannot take: UNAVAILABLE OVERLOADED, RetryInfo, and the same wait in grpc-retry-pushback-ms", async () => {
    const client = new grpc.Client(noQueue.address, grpc.credentials.createInsecure());
    let seen: Seen[] = [];
    try {
      // 40 calls at once on one connection: the first takes the slot, the rest find it taken.
      for (let round = 0; round < 5 && !seen.some((s) => s.status.code !== grpc.status.OK); round++) {
        seen = await Promise.all(Array.from({ length: 40 }, () => plainListFactors(client, "reports")));
      }
    } finally {
      client.close();
    }
    const shed = seen.filter((s) => s.status.code !== grpc.status.OK);
    assert.ok(shed.length > 0, "some calls were shed");
    assert.ok(shed.length < seen.length, "the slot served some");
    for (const s of shed) {
      assert.equal(grpc.status[s.status.code], "UNAVAILABLE", s.status.details);
      // Trailers-only, or grpc-js would commit the call and never retry it.
      assert.deepEqual(s.events, ["status"], "no response headers before the status");
      const { info, retryMs } = richDetails(s.status.metadata);
      assert.equal(info?.reason, "OVERLOADED");
      assert.equal(info?.domain, errorDomain);
      assert.equal(info?.metadata.priority, "low", "ListFactors is low priority");
      assert.ok(
        ["queue_full", "overloaded"].includes(info?.metadata.cause ?? ""),
        `cause ${info?.metadata.cause}`,
      );
      assert.ok(retryMs !== undefined && retryMs >= 50 && retryMs <= 2000, `RetryInfo ${retryMs} ms`);
      assert.deepEqual(
        s.status.metadata.get(retryPushbackTrailer),
        [String(retryMs)],
        "pushback = RetryInfo",
      );
    }
  });

  it("a grpc-js client with the client package's retry policy waits the pushback before retrying a shed call", async () => {
    const recorder = await startAttemptRecorder(noQueue.address);
    const holder = holdTheSlot(clients.pinned(noQueue, "holder"));
    try {
      await holder.warmedUp(2);
      // Backoff of 1 ms: a client that ignored the pushback (at least 50 ms) would retry at once.
      // A bucket of 100 tokens: throttling (next test) stays out of the way.
      const probe = clients.retrying(recorder.address, "probe", {
        maxAttempts: 5,
        initialBackoffMs: 1,
        maxBackoffMs: 1,
        throttleMaxTokens: 100,
      });
      const waits = () => retriedAfterShed(recorder.attempts, "probe-");
      for (let i = 0; i < 10 && waits().length < 4; i++) {
        await settle(
          probe.factors.listFactors(
            { subject: "u" },
            { timeoutMs: 15_000, headers: { "x-probe": `probe-${i}` } },
          ),
        );
      }
      const pairs = waits();
      const shown = pairs.map(
        ({ shed, next }) => `${shed.pushbackMs}/${(next.arrivedAt - shed.answeredAt).toFixed(0)}`,
      );
      process.stdout.write(`# pushback/waited (ms): ${shown.join(" ")}\n`);
      assert.ok(pairs.length >= 1, `shed attempts were retried (${recorder.attempts.length} attempts seen)`);
      for (const { shed, next } of pairs) {
        const pushback = shed.pushbackMs ?? Number.NaN;
        assert.ok(pushback >= 50, `pushback ${pushback} ms`);
        // The retry timer counts whole ms from the loop's clock: at most 1 ms early.
        const waited = next.arrivedAt - shed.answeredAt;
        assert.ok(
          waited >= pushback - 1,
          `retried ${waited.toFixed(1)} ms after a pushback of ${pushback} ms`,
        );
      }
      for (const a of recorder.attempts) assert.ok(a.previous < 5, "never more than maxAttempts");
    } finally {
      await holder.stop();
      recorder.close();
    }
  });

  it("retry throttling keeps a client's retries of shed calls well below calls x maxAttempts", async () => {
    const recorder = await startAttemptRecorder(noQueue.address);
    const holder = holdTheSlot(clients.pinned(noQueue, "holder"));
    try {
      await holder.warmedUp(2);
      // The client package's defaults: 4 attempts, a bucket of 20 tokens, retries only above 10.
      // (grpc-js asks the bucket once the pushback has passed: a refused retry still waits it.)
      const client = clients.retrying(recorder.address, "reports");
      const calls = 20;
      let succeeded = 0;
      for (let i = 0; i < calls; i++) {
        const f = await settle(
          client.factors.listFactors(
            { subject: "u" },
            { timeoutMs: 15_000, headers: { "x-probe": `t-${i}` } },
          ),
        );
        if (f === undefined) succeeded += 1;
        else assert.equal(f.reason, "OVERLOADED", f.message);
      }
      const attempts = recorder.attempts.filter((a) => a.probe.startsWith("t-"));
      const retries = attempts.filter((a) => a.previous > 0).length;
      process.stdout.write(
        `# throttling: ${calls} calls, ${attempts.length} attempts, ${succeeded} succeeded\n`,
      );
      assert.equal(attempts.length - retries, calls, "one first attempt per call");
      assert.ok(retries >= 1, "shed calls were retried at first");
      // Each failed attempt takes a token, each success gives half of one back, and no retry is made
      // at 10 tokens or fewer: at most 10 + successes / 2 retries, where 4 attempts a call would be 60.
      assert.ok(retries <= 10 + succeeded / 2, `${retries} retries, ${succeeded} successes`);
      assert.ok(attempts.length < (calls * 4) / 2, `${attempts.length} attempts for ${calls} calls`);
    } finally {
      await holder.stop();
      recorder.close();
    }
  });

  it("admits critical StepUp -> Verify flows while a flood of low-priority ListFactors is shed", async () => {
    const seeder = clients.pinned(queued, "payments");
    const subjects: FlowSubject[] = await seedSubjects(seeder, 8, { concurrency: 1 });
    const from = queued.lines.length;
    // The flood: 4 clients of `reports` with 50 ListFactors each in flight all the time.
    let stopped = false;
    const flood = { ok: 0, shed: 0, other: [] as string[], shedDuringFlows: 0 };
    let flowsRunning = false;
    const floodClients = Array.from({ length: 4 }, () => clients.pinned(queued, "reports"));
    const floodUntil = performance.now() + 30_000;
    const flooding = floodClients.flatMap((client) =>
      Array.from({ length: 50 }, async () => {
        for (let i = 0; i < 500 && !stopped && performance.now() < floodUntil; i++) {
          const f = await settle(client.factors.listFactors({ subject: "u" }, { timeoutMs: 10_000 }));
          if (f === undefined) {
            flood.ok += 1;
          } else if (f.reason === "OVERLOADED") {
            flood.shed += 1;
            if (flowsRunning) flood.shedDuringFlows += 1;
            await sleep(5);
          } else {
            flood.other.push(`${Code[f.code]} ${f.reason}: ${f.message}`);
          }
        }
      }),
    );
    let flows: PromiseSettledResult<string>[] = [];
    try {
      // Saturated before the flows start.
      for (let i = 0; i < 300 && flood.shed === 0; i++) await sleep(20);
      assert.ok(flood.shed > 0, "the flood saturates the replica");
      const payments = clients.pinned(queued, "payments");
      flowsRunning = true;
      flows = await Promise.allSettled(subjects.map((s) => criticalFlow(payments, s)));
      flowsRunning = false;
    } finally {
      stopped = true;
      await Promise.all(flooding);
    }
    process.stdout.write(
      `# priorities: flood ${flood.ok} served, ${flood.shed} shed (${flood.shedDuringFlows} during the flows)\n`,
    );
    assert.deepEqual(
      flows.map((f) => (f.status === "fulfilled" ? f.value : String(f.reason))),
      subjects.map(() => "granted"),
      "every critical flow gets its grant, with no retry",
    );
    assert.ok(flood.shedDuringFlows > 0, "low-priority calls were shed while the flows ran");
    assert.deepEqual(flood.other, [], "the flood only ever succeeds or is shed");
    // The replica's lines come through a pipe: wait (at most 5 s) for the flows' lines.
    const critical = () =>
      callLines(queued, from).filter((c) => /StepUpService\/(StepUp|Verify)$/.test(c.rpc));
    for (let i = 0; i < 100 && critical().length < subjects.length * 2; i++) await sleep(50);
    assert.equal(critical().length, subjects.length * 2, "one StepUp and one Verify per flow");
    assert.deepEqual(
      critical().filter((c) => c.status !== "OK"),
      [],
      "no critical call was shed",
    );
  });
});

/**
 * The shed attempts of calls whose `x-probe` starts with `prefix` that the client retried, each
 * with its retry (the next attempt of the same call).
 */
function retriedAfterShed(attempts: Attempt[], prefix: string): { shed: Attempt; next: Attempt }[] {
  const pairs: { shed: Attempt; next: Attempt }[] = [];
  for (const shed of attempts) {
    if (!shed.probe.startsWith(prefix) || shed.code !== grpc.status.UNAVAILABLE) continue;
    const next = attempts.find((a) => a.probe === shed.probe && a.previous === shed.previous + 1);
    if (next) pairs.push({ shed, next });
  }
  return pairs;
}

/** StepUp for payments.transfer (critical), then Verify with the next TOTP code: "granted" or throws. */
async function criticalFlow(client: StepgateClient, s: FlowSubject): Promise<string> {
  const sessionId = `s-${randomBytes(6).toString("hex")}`;
  const action = "payments.transfer";
  const stepUp = await client.stepUp.stepUp({ subject: s.subject, sessionId, action });
  if (stepUp.outcome.case !== "challenge")
    throw new Error(`expected a challenge, got ${stepUp.outcome.case}`);
  const verified = await client.stepUp.verify({
    challengeId: stepUp.outcome.value.challengeId,
    subject: s.subject,
    sessionId,
    action,
    // One step ahead of the confirming code (one step of skew is accepted).
    proof: { kind: { case: "totpCode", value: totpCode(s.secret, Math.floor(Date.now() / 1000) + 30) } },
    idempotencyKey: newKey(),
  });
  return verified.grant?.token ? "granted" : "no grant";
}
