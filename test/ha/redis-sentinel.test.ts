// Redis with Sentinel: a primary, a replica and three sentinels, each a real process on loopback;
// one replica of Stepgate finds the primary through the sentinels (REDIS_SENTINELS). The primary is
// SIGKILLed under a steady flow load through @stepgate/client, with replication cut just before so
// the writes of the last seconds are surely lost (asynchronous replication at its worst). Asserts:
// flows succeed again within Sentinel's failover plus 2 s, no code is accepted twice, and what was
// closed before the kill (a spent single-use grant, a revoked grant, a lockout) stays closed on the
// promoted replica. Prints its figures, and when an assertion fails, what the service logged about
// its hot state since the kill (moves, resync failures, dependency changes, reconnects).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { printFlowLoadReport } from "@stepgate/testkit/flow-load";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { type SentinelRedis, startSentinelRedis } from "@stepgate/testkit/sentinel-redis";
import { assertClosed } from "../support/closed-state.ts";
import { closeStateWith, flowLoadKeepingFailures } from "../support/ha.ts";
import { type Harness, startStepgate } from "../support/stepgate.ts";

const load = { ratePerSecond: 10, durationMs: 16_000, killAtMs: 4000 };

// The service's lines that tell where the hot state went and why.
const failoverMessages = [
  "hot state moved",
  "security state not carried back into redis yet",
  "dependency down",
  "dependency up",
  "redis connection made again",
  "redis client stopped reconnecting: connecting again",
];

/** Runs `assertions`; when one fails, prints `lines` first, the service's own account of it. */
async function printingOnFailure(lines: () => string[], assertions: () => Promise<void>): Promise<void> {
  try {
    await assertions();
  } catch (error) {
    const account = lines().map((l) => `#   ${l.trim()}`);
    console.log(["# the service's failover lines since the kill:", ...account].join("\n"));
    throw error;
  }
}

describe("Redis Sentinel failover under load", () => {
  let redis: SentinelRedis;
  let h: Harness;
  let subjects: FlowSubject[];
  let closing: FlowSubject[];
  before(async () => {
    redis = await startSentinelRedis({ downAfterMs: 1000, failoverTimeoutMs: 6000 });
    h = await startStepgate({
      redis: false,
      healthIntervalMs: 200,
      env: {
        REDIS_SENTINELS: redis.sentinelList,
        REDIS_SENTINEL_MASTER: redis.masterName,
        REDIS_PREFIX: `sentinel-${randomBytes(4).toString("hex")}:`,
        STEPGATE_REDIS_TIMEOUT_MS: "250",
      },
    });
    subjects = await seedSubjects(h.client, Math.ceil(load.ratePerSecond * 16) + 10);
    closing = await seedSubjects(h.client, 3, { prefix: "closing-" });
  });
  after(async () => {
    await h?.close();
    await redis?.destroy();
  });

  it("the promoted replica takes over within failover + 2 s; nothing closed re-opens", async () => {
    assert.ok(h.logs.some((l) => l.includes('"stepgate serving"')));
    assert.equal(await redis.masterPort(), redis.primary.port);
    const { flows, failures } = flowLoadKeepingFailures(h.client, subjects, load);
    await sleep(load.killAtMs - 2000);
    // From here on the replica hears nothing: what follows lives on the primary alone.
    await redis.cutReplication();
    const closed = await closeStateWith(h.client, closing);
    const keysOnPrimary = await redis.keyCount(redis.primary);
    const logsBefore = h.logs.length;
    await redis.primary.stop("SIGKILL");
    const killedAt = flows.markFaultStart();
    let promotedAt: number | undefined;
    for (let i = 0; i < 200 && promotedAt === undefined; i++) {
      if ((await redis.masterPort()) === redis.replica.port) promotedAt = flows.elapsedMs();
      else await sleep(50);
    }
    assert.ok(promotedAt !== undefined, "the sentinels promoted the replica within about 10 s");
    const keysOnPromoted = await redis.keyCount(redis.replica);
    flows.markFaultEnd();
    // Writes reach Redis again once the replica's hot state is back on it (if it ever left).
    const movesSinceKill = () => h.logs.slice(logsBefore).filter((l) => l.includes('"hot state moved"'));
    let redisWritableAt: number | undefined;
    for (let i = 0; i < 200 && redisWritableAt === undefined; i++) {
      const moves = movesSinceKill();
      const last = moves.at(-1);
      if (moves.length > 0 && last?.includes('"redis"')) redisWritableAt = flows.elapsedMs();
      else if (moves.length === 0 && i >= 20) redisWritableAt = promotedAt;
      else await sleep(50);
    }
    const report = await flows.done;
    printFlowLoadReport("Sentinel failover", report);
    const moves = movesSinceKill();
    const movedAway = moves.some((l) => l.includes('"postgresql"'));
    const backOnRedis = moves.some((l) => l.includes('"redis"'));
    const lateFailures = failures.filter((f) => f.flowStartMs > (promotedAt as number) + 2000);
    console.log(
      `# primary SIGKILLed at ${killedAt} ms; sentinels named the replica at ${Math.round(promotedAt as number)} ms ` +
        `(${Math.round((promotedAt as number) - killedAt)} ms); hot state on PostgreSQL meanwhile: ${movedAway}, ` +
        `on Redis again ${Math.round((redisWritableAt ?? Number.NaN) - killedAt)} ms after the kill; keys: ${keysOnPrimary} on the primary, ` +
        `${keysOnPromoted} on the promoted replica (lost with asynchronous replication); ` +
        `failed calls ${failures.length} (${[...new Set(failures.map((f) => f.failure))].join(", ")}), ` +
        `of flows started later than promotion + 2 s: ${lateFailures.length}`,
    );
    const failoverLines = () =>
      h.logs.slice(logsBefore).filter((l) => failoverMessages.some((m) => l.includes(`"${m}"`)));
    await printingOnFailure(failoverLines, async () => {
      assert.ok(
        keysOnPromoted !== undefined && keysOnPrimary !== undefined && keysOnPromoted < keysOnPrimary,
        "the promoted replica lacks the last writes: the test covers their loss",
      );
      assert.equal(report.replays, 0, "no TOTP code accepted twice");
      assert.equal(report.rpcs.ReplayProbe.failed, 0, "every replayed code refused");
      assert.deepEqual(
        lateFailures.map((f) => `${f.rpc} ${f.failure}`),
        [],
        "flows started 2 s after the promotion all succeed",
      );
      assert.ok(
        redisWritableAt !== undefined,
        "the hot state is writable on Redis again within 10 s of the promotion",
      );
      assert.ok(!movedAway || backOnRedis, "the hot state is on Redis again, on the promoted replica");
      await assertClosed(h.client, closed, "after the failover to a replica that never saw them");
    });
  });
});
