// HTTP/2 abuse against a real replica process: each case runs a bounded loop of frames over
// loopback while critical step-up flows go on through @stepgate/client. The replica must live,
// stay SERVING, answer every flow, and keep its memory; its CPU cost per case is printed.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it, type TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { ListFactorsRequestSchema } from "@stepgate/api/gen/stepgate/v1/factor_service_pb";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { freePort } from "@stepgate/testkit/free-port";
import { isAlive } from "@stepgate/testkit/orphan-reaper";
import { cpuSeconds, residentMemory } from "@stepgate/testkit/process-stats";
import { type ReplicaProcess, startReplicaProcess } from "@stepgate/testkit/replica-process";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import {
  type BareOutcome,
  bareCall,
  bareCalls,
  connectBare,
  grpcFrame,
  tallyOutcomes,
} from "./support/bare-grpc.ts";
import {
  allClosed,
  holdConnections,
  howConnectionsEnded,
  invalidFrames,
  rapidReset,
  slowloris,
  undecodableCalls,
} from "./support/http2-abuse.ts";
import { driveLoad, seedUsers } from "./support/load.ts";
import { plainUnary } from "./support/plain-call.ts";
import { clientPreface, http2Error, http2ErrorName, openRawConnection } from "./support/raw-http2.ts";
import { newKeyRing, testPolicy, writePolicy } from "./support/stepgate.ts";

const mib = 2 ** 20;
// Critical flows at this rate while each abuse runs (one StepUp and one Verify each).
const flowsPerCase = 20;
const flowsPerSecond = 10;
// A generous ceiling: an idle replica holds about 135 MiB; the Kubernetes limit is 384 MiB.
const rssCeilingBytes = 400 * mib;
// Connection lives short enough to watch idle and half-open connections end (defaults: 30 s, 10 s).
const connectionAgeMs = 8000;
const connectionGraceMs = 2000;
// Room for the idle connections of the test, the client's and the health channel's, not many more.
const maxConnections = 2100;
// The replica's default STEPGATE_REQUEST_TIMEOUT_MS and STEPGATE_MAX_PENDING_REQUESTS.
const requestTimeoutMs = 5000;
const maxPendingRequests = 1000;

const criticalPolicy = testPolicy.replace(
  "payments.transfer: { acr: aal2, max_age: 300, methods: [totp] }",
  "payments.transfer: { acr: aal2, max_age: 300, methods: [totp], priority: critical }",
);

describe("HTTP/2 abuse against a real replica", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let replica: ReplicaProcess;
  let pid: number;
  let client: StepgateClient;
  let healthChannel: grpc.Channel;
  // Replica CPU seconds one critical flow costs, to tell the abuse's cost from the flows'.
  let flowCpuSeconds = 0;

  before(async () => {
    assert.notEqual(criticalPolicy, testPolicy, "payments.transfer made critical");
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    const port = await freePort();
    replica = await startReplicaProcess("abuse-1", port, {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_POLICY_FILE: writePolicy(criticalPolicy),
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      STEPGATE_LOG_LEVEL: "info",
      DATABASE_URL: db.url,
      DATABASE_POOL_SIZE: "5",
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redis.prefix,
      STEPGATE_MAX_CONNECTION_AGE_MS: String(connectionAgeMs),
      STEPGATE_MAX_CONNECTION_AGE_GRACE_MS: String(connectionGraceMs),
      STEPGATE_MAX_CONNECTIONS: String(maxConnections),
    });
    pid = replica.pid ?? 0;
    client = createStepgateClient({ target: replica.address, caller: "payments" });
    healthChannel = new grpc.Channel(replica.address, grpc.credentials.createInsecure(), {});
    const users = await seedUsers(client, flowsPerCase);
    const cpuBefore = cpuSeconds(pid);
    assert.deepEqual((await driveLoad(client, users, flowsPerSecond)).errors, {});
    flowCpuSeconds = (cpuSeconds(pid) - cpuBefore) / flowsPerCase;
  });
  after(async () => {
    client?.close();
    healthChannel?.close();
    await replica?.stop("SIGKILL");
    await redis?.clean();
    await db?.drop();
  });

  const servingStatus = async () => {
    const health = createClient(
      Health,
      createGrpcJsTransport({ channel: healthChannel, defaultTimeoutMs: 2000 }),
    );
    return (await health.check({ service: "" })).status;
  };

  /**
   * Runs `abuse` while `flowsPerCase` critical flows run, then checks the replica: alive, SERVING,
   * every flow answered, RSS under the ceiling. Prints its CPU seconds (net of the flows') and RSS.
   */
  const underAbuse = async (t: TestContext, abuse: () => Promise<void>): Promise<void> => {
    const users = await seedUsers(client, flowsPerCase);
    const cpuBefore = cpuSeconds(pid);
    const rssBefore = residentMemory(pid).rssBytes;
    const linesBefore = replica.lines.length;
    const flows = await driveLoad(client, users, flowsPerSecond, abuse);
    const cpu = cpuSeconds(pid) - cpuBefore;
    const memory = residentMemory(pid);
    t.diagnostic(
      `replica CPU ${cpu.toFixed(2)} s (abuse about ${(cpu - flowCpuSeconds * flowsPerCase).toFixed(2)} s, ` +
        `flows ${(flowCpuSeconds * 1000).toFixed(1)} ms each); RSS ${(rssBefore / mib).toFixed(0)} -> ` +
        `${(memory.rssBytes / mib).toFixed(0)} MiB, peak ${(memory.peakBytes / mib).toFixed(0)} MiB; ` +
        `flows: ${flows.flows} ok ${flows.flows - flows.failures}, p50 ${flows.p50Ms} ms, max ${flows.maxMs} ms; ` +
        `log lines by status: ${JSON.stringify(callStatuses(replica.lines.slice(linesBefore)))}`,
    );
    assert.ok(replica.running && isAlive(pid), "the replica is alive");
    assert.equal(await servingStatus(), HealthCheckResponse_ServingStatus.SERVING);
    assert.deepEqual(flows.errors, {}, "every critical flow succeeded");
    assert.ok(memory.peakBytes < rssCeilingBytes, `peak RSS ${memory.peakBytes / mib} MiB`);
  };

  it("rapid reset: Node's reset rate limit closes each connection with GOAWAY after about 1,000 streams", async (t) => {
    let connections: Awaited<ReturnType<typeof rapidReset>> = [];
    await underAbuse(t, async () => {
      connections = await rapidReset(replica.port, {
        pairs: 20_000,
        perConnection: 5000,
        path: "/stepgate.v1.FactorService/ListFactors",
      });
    });
    const ends = connections.map(
      (c) => `${c.pairs} sent, ${c.goaway ? describeGoaway(c.goaway) : "no GOAWAY"}`,
    );
    t.diagnostic(`${connections.length} connections: ${ends.join("; ")}`);
    assert.equal(
      connections.reduce((sum, c) => sum + c.pairs, 0),
      20_000,
    );
    // nghttp2's limit (Node's streamResetBurst 1000, streamResetRate 33/s, which grpc-js leaves alone).
    for (const c of connections.filter((c) => c.pairs === 5000)) {
      assert.ok(
        c.goaway && c.goaway.code !== http2Error.noError,
        "a connection resetting 5,000 streams is closed",
      );
      // Client streams have odd ids: the last one processed tells how many were.
      const processed = (c.goaway.lastStreamId + 1) / 2;
      assert.ok(processed < 1500, `${processed} streams processed`);
    }
  });

  it("many idle connections: held until their age, cheaply, and capped by STEPGATE_MAX_CONNECTIONS", async (t) => {
    const count = 2000;
    let held: Awaited<ReturnType<typeof holdConnections>> | undefined;
    let halfOpen: Awaited<ReturnType<typeof holdConnections>> | undefined;
    await underAbuse(t, async () => {
      held = await holdConnections(replica.port, count);
      // A partial preface: the session exists, the client never says anything valid.
      halfOpen = await holdConnections(replica.port, 50, {
        opening: clientPreface.subarray(0, 10),
        polite: false,
      });
      t.diagnostic(
        `${count} idle + 50 half-open connections: RSS ${(residentMemory(pid).rssBytes / mib).toFixed(0)} MiB, ` +
          `${readdirSync(`/proc/${pid}/fd`).length} fds open of ${openFilesLimit(pid)}`,
      );
      // The cap: the idle and half-open ones, the client's and the health channel's leave room for
      // fewer than 50 more.
      const extra = await holdConnections(replica.port, 150);
      await Promise.race([Promise.all(extra.connections.map((c) => c.closed)), sleep(500)]);
      const refused = extra.connections.filter((c) => c.socket.destroyed && c.received.size === 0).length;
      t.diagnostic(`150 more connections: ${refused} closed at once without a frame`);
      for (const c of extra.connections) c.close();
      assert.ok(refused >= 150 - (maxConnections - count - 50), `${refused} of 150 refused past the cap`);
    });
    assert.ok(held && halfOpen);
    const bound = connectionAgeMs * 1.1 + connectionGraceMs + 10_000;
    assert.ok(
      await allClosed([...held.connections, ...halfOpen.connections], bound),
      "the replica closes them all",
    );
    const longest = (ms: (number | undefined)[]) => Math.round(Math.max(...ms.map((m) => m ?? Infinity)));
    t.diagnostic(
      `idle: ${JSON.stringify(howConnectionsEnded(held.connections))}, longest held ${longest(held.closedAfterMs)} ms; ` +
        `half-open: ${JSON.stringify(howConnectionsEnded(halfOpen.connections))}, longest ${longest(halfOpen.closedAfterMs)} ms`,
    );
    assert.deepEqual(
      howConnectionsEnded(held.connections),
      { "GOAWAY NO_ERROR": count },
      "closed by their age",
    );
  });

  it("slowloris: calls that never finish their request are ended with a status and reset", async (t) => {
    const waves = 6;
    const perWave = 500;
    let outcomes: BareOutcome[] = [];
    await underAbuse(t, async () => {
      outcomes = await slowloris(replica.port, {
        sessions: 10,
        waves,
        perWave,
        intervalMs: 500,
        path: "/stepgate.v1.FactorService/ListFactors",
        boundMs: requestTimeoutMs * 2 + 10_000,
      });
    });
    const held = outcomes.map((o) => o.heldMs).sort((a, b) => a - b);
    t.diagnostic(
      `${outcomes.length} calls: ${JSON.stringify(tallyOutcomes(outcomes))}; held p50 ` +
        `${Math.round(held[Math.floor(held.length / 2)] ?? 0)} ms, max ${Math.round(held.at(-1) ?? 0)} ms`,
    );
    const byStatus = (code: grpc.status) => outcomes.filter((o) => o.status === code).length;
    const timedOut = byStatus(grpc.status.DEADLINE_EXCEEDED);
    const evicted = byStatus(grpc.status.UNAVAILABLE);
    assert.equal(timedOut + evicted, waves * perWave, "every call was answered by the server");
    assert.ok(
      evicted >= waves * perWave - maxPendingRequests,
      `${evicted} ended to keep the pending ones bounded`,
    );
    assert.ok(
      outcomes.every((o) => o.rstCode === 0),
      "each stream closed cleanly (RST_STREAM NO_ERROR after the status), not by its connection",
    );
  });

  it("undecodable bytes: each call gets a clean status, each bad frame a GOAWAY, no log line has the bytes", async (t) => {
    const marker = Buffer.from("h2-abuse-marker-5e1f");
    const repeats = 150;
    const seen: Record<string, string> = {};
    await underAbuse(t, async () => {
      const session = await connectBare(replica.port);
      for (const c of undecodableCalls(marker)) {
        const outcomes = await bareCalls(repeats, 10, () =>
          bareCall(session, "/stepgate.v1.StepUpService/StepUp", { body: c.body, headers: c.headers }),
        );
        seen[c.name] = JSON.stringify(tallyOutcomes(outcomes));
        assert.ok(
          outcomes.every((o) => o.status === c.status),
          `${c.name}: ${seen[c.name]}`,
        );
      }
      session.destroy();
      for (const f of invalidFrames(marker)) {
        for (let i = 0; i < repeats; i++) {
          const connection = await openRawConnection(replica.port);
          await connection.send(...f.frames);
          await connection.closed;
          const goaway = connection.goaways[0];
          seen[f.name] ??= goaway ? http2ErrorName(goaway.code) : "no GOAWAY";
          assert.equal(goaway?.code, f.code, `${f.name}: GOAWAY ${seen[f.name]}`);
        }
      }
    });
    t.diagnostic(`${repeats} of each: ${JSON.stringify(seen)}`);
    const leaked = replica.lines.filter((line) =>
      [marker.toString(), marker.toString("hex"), marker.toString("base64")].some((form) =>
        line.includes(form),
      ),
    );
    assert.deepEqual(leaked, [], "no log line holds the bytes");
  });

  it("unknown methods: answered UNIMPLEMENTED, also to grpc-js; CPU per call printed next to ListFactors", async (t) => {
    const calls = 2000;
    const paths = ["/no.Such/Method", "/stepgate.v1.StepUpService/Nope"];
    const session = await connectBare(replica.port);
    const unknown = (i: number) =>
      bareCall(session, paths[i % paths.length] ?? "/", { body: grpcFrame(new Uint8Array()) });
    const expectUnimplemented = (outcomes: BareOutcome[]) =>
      assert.ok(
        outcomes.every((o) => o.status === grpc.status.UNIMPLEMENTED && o.rstCode === 0),
        JSON.stringify(tallyOutcomes(outcomes)),
      );
    await underAbuse(t, async () => expectUnimplemented(await bareCalls(calls, 32, unknown)));
    // A grpc-js client too: the reset after the early answer must not turn it into an error.
    const plain = new grpc.Client(replica.address, grpc.credentials.createInsecure());
    const seen = await plainUnary(
      plain,
      "/no.Such/Method",
      ListFactorsRequestSchema,
      {},
      { caller: "payments", deadlineMs: 2000 },
    );
    plain.close();
    assert.equal(seen.status.code, grpc.status.UNIMPLEMENTED);
    // Each alone, few at a time: ListFactors is low priority, so it is shed at once while the event
    // loop is saturated, and gets less room for a second after a critical call (docs/traffic-shaping.md).
    await sleep(1500);
    const unknownAlone = await measureCalls(pid, () => bareCalls(calls, 4, unknown));
    expectUnimplemented(unknownAlone.outcomes);
    const listFactors = grpcFrame(
      toBinary(ListFactorsRequestSchema, create(ListFactorsRequestSchema, { subject: "user-x" })),
    );
    const listed = await measureCalls(pid, () =>
      bareCalls(calls, 4, () =>
        bareCall(session, "/stepgate.v1.FactorService/ListFactors", { body: listFactors }),
      ),
    );
    session.destroy();
    const listedTally = JSON.stringify(tallyOutcomes(listed.outcomes));
    assert.ok(
      listed.outcomes.every((o) => o.status === grpc.status.OK || o.status === grpc.status.UNAVAILABLE),
      listedTally,
    );
    t.diagnostic(
      `replica CPU per call, ${calls} each: unknown method ${unknownAlone.cpuUsPerCall.toFixed(0)} us, ` +
        `ListFactors ${listed.cpuUsPerCall.toFixed(0)} us (${listedTally})`,
    );
  });
});

/** Runs `calls` and tells how much CPU the replica `pid` spent per call meanwhile, in microseconds. */
async function measureCalls(pid: number, calls: () => Promise<BareOutcome[]>) {
  const before = cpuSeconds(pid);
  const outcomes = await calls();
  return { outcomes, cpuUsPerCall: ((cpuSeconds(pid) - before) / outcomes.length) * 1e6 };
}

/** The replica's call lines (one per call) counted by status, for reports. */
function callStatuses(lines: readonly string[]): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const line of lines) {
    const status = /"msg":"call"/.test(line) ? /"status":"(\w+)"/.exec(line)?.[1] : undefined;
    if (status) tally[status] = (tally[status] ?? 0) + 1;
  }
  return tally;
}

/** `GOAWAY INTERNAL_ERROR after stream 2001`, for reports. */
function describeGoaway(goaway: { code: number; lastStreamId: number }): string {
  return `GOAWAY ${http2ErrorName(goaway.code)} after stream ${goaway.lastStreamId}`;
}

/** The soft limit of open files of `pid` (/proc/<pid>/limits). */
function openFilesLimit(pid: number): string {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  return line?.split(/\s+/)[3] ?? "unknown";
}
