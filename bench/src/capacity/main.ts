// pnpm bench:capacity: what each call makes Redis and PostgreSQL do (commands, round trips,
// transactions, row writes, WAL), what one Redis primary and one PostgreSQL primary carry on this
// machine (redis-benchmark, pgbench), and the fleet-wide calls/s ceilings that follow.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { startOwnRedis } from "@stepgate/testkit/own-redis";
import { startBenchCluster } from "../bench-cluster.ts";
import { codeRevision } from "../code-revision.ts";
import { describeMachine } from "../machine.ts";
import { writeResultsJson } from "../results-file.ts";
import { seedUsers } from "../seed-users.ts";
import { createCallKinds } from "./call-kinds.ts";
import { ceilings, type KindFigures, reportLines } from "./capacity-report.ts";
import { lessIdle, measureWindow, perCall } from "./measure-window.ts";
import { openPgProbe } from "./pg-counters.ts";
import { measurePostgres } from "./pgbench.ts";
import { measureRedis } from "./redis-benchmark.ts";
import { openRedisProbe } from "./redis-counters.ts";

const usage = `pnpm bench:capacity [--calls=200] [--idle-seconds=5] [--redis-requests=200000] [--redis-db=15]
  [--pgbench-seconds=15] [--out=bench-results/]`;
const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "200" },
    "idle-seconds": { type: "string", default: "5" },
    "redis-requests": { type: "string", default: "200000" },
    "redis-db": { type: "string", default: "15" },
    "pgbench-seconds": { type: "string", default: "15" },
    out: { type: "string", default: join(import.meta.dirname, "../../../bench-results") },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const calls = Number(values.calls);
const log = (line: string) => process.stderr.write(`${line}\n`);
const databaseAdminUrl =
  process.env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const startedAt = new Date();
// A redis-server of the run's own (same binary, no persistence, as the machine's): INFO counts every
// client's commands, and another user's traffic on a shared Redis would be counted as Stepgate's.
const ownRedis = process.env.STEPGATE_BENCH_REDIS_URL ? undefined : await startOwnRedis();
const redisUrl = process.env.STEPGATE_BENCH_REDIS_URL ?? ownRedis?.url ?? "";

log("starting one replica");
const cluster = await startBenchCluster({
  size: 1,
  databaseAdminUrl,
  redisUrl,
  basePort: 45_000 + Math.floor(Math.random() * 2000) * 4,
  // Its rate limits as production would have them: a subject's limit (120 calls a minute) leases one
  // token at a time, so each StepUp and Verify counts it in Redis; the bench's out-of-reach limits
  // would lease 100,000 and hide that.
  policyFile: join(import.meta.dirname, "../../../services/stepgate/policy/example.yaml"),
});
process.once("SIGINT", () => void cluster.close().then(() => process.exit(130)));
const versions = { postgres: await cluster.database.version(), redis: (await cluster.redis.info()).version };
const kinds: KindFigures[] = [];
try {
  // Each Verify a user of its own: stepup-elevated's preparation, verify, verify x16.
  const users = await seedUsers(cluster.database.url, cluster.encryptionKeys, 3 * calls);
  const redis = await openRedisProbe(redisUrl);
  const pg = await openPgProbe(cluster.database.url);
  const callKinds = createCallKinds(cluster.target, "payments", users);
  const window = { redis, pg, outboxKey: `${cluster.redis.prefix}audit-outbox`, settleMs: 10_500 };
  try {
    log(`preparing: ${calls} elevated sessions, ${calls} challenges`);
    await callKinds.prepare(calls);
    await sleep(window.settleMs);
    log(`idle replica for ${values["idle-seconds"]} s`);
    const idle = await measureWindow([], 1, window, Number(values["idle-seconds"]) * 1000);
    kinds.push({ name: "idle", concurrency: 0, work: idle, perCall: perCall(idle) });
    for (const kind of callKinds.kinds) {
      log(
        `${kind.name}: ${calls} calls, ${kind.concurrency} in flight, then ${window.settleMs / 1000} s to settle`,
      );
      const work = await measureWindow(kind.calls(calls), kind.concurrency, window);
      kinds.push({
        name: kind.name,
        concurrency: kind.concurrency,
        work,
        perCall: perCall(lessIdle(work, idle)),
      });
    }
  } finally {
    callKinds.close();
    redis.close();
    await pg.close();
  }
} finally {
  await cluster.close();
}

log("redis-benchmark");
const redisAddress = new URL(redisUrl);
const redisRates = measureRedis({
  host: redisAddress.hostname,
  port: Number(redisAddress.port || 6379),
  db: Number(values["redis-db"]),
  requests: Number(values["redis-requests"]),
  clients: 50,
});
await ownRedis?.destroy();
log("pgbench");
const pgAddress = new URL(databaseAdminUrl);
const pgRates = measurePostgres({
  host: pgAddress.hostname,
  port: Number(pgAddress.port || 5432),
  user: decodeURIComponent(pgAddress.username || "postgres"),
  scale: 10,
  clients: 8,
  threads: 2,
  seconds: Number(values["pgbench-seconds"]),
});

const lines = reportLines(kinds, redisRates, pgRates);
console.log(lines.join("\n"));
mkdirSync(values.out, { recursive: true });
const file = join(values.out, `capacity-${startedAt.toISOString().replace(/[:.]/g, "-")}.json`);
const result = {
  machine: describeMachine(versions, startedAt),
  code: codeRevision(),
  redis: ownRedis ? "own redis-server" : redisUrl,
  callsPerKind: calls,
  kinds,
  redisRates,
  pgRates,
  ceilings: ceilings(kinds, redisRates, pgRates),
};
// Infinity (a kind that makes no store work) is not JSON: null.
writeResultsJson(file, result);
log(`wrote ${file}`);
