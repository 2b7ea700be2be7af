// pnpm bench:memory: starts one replica the way `pnpm bench` does, and prints its memory idle, under
// a fixed number of concurrent no-op streams, under Verify load, and after: RSS, peak RSS (VmHWM)
// and process.memoryUsage() (V8 heap, external buffers), read through bench/src/memory-probe.mjs.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { replicaNodeFlags } from "@stepgate/testkit/replica-process";
import { startBenchCluster } from "./bench-cluster.ts";
import { startLoadWorkers } from "./load-workers.ts";
import { type PhaseResult, runPhase } from "./measure-scenario.ts";
import { resetPeakMemory, residentMemory } from "./process-stats.ts";
import { seedUsers } from "./seed-users.ts";

const usage = `pnpm bench:memory [--streams=128] [--noop-seconds=10] [--verify-seconds=6] [--users=6000]
  [--settle-seconds=10] [--node-options="..."] [--node-flags="--max-semi-space-size=2 ..."] [--env=NAME=VALUE]
  --node-options: NODE_OPTIONS for the replica (default: none, as in production)
  --node-flags: the replica's node and V8 flags instead of the production ones (replicaNodeFlags);
    --node-flags= (empty) runs it with V8's defaults
  --env=NAME=VALUE: more environment for the replica (e.g. MALLOC_ARENA_MAX=2), repeatable`;

const { values } = parseArgs({
  options: {
    streams: { type: "string", default: "128" },
    "noop-seconds": { type: "string", default: "10" },
    "verify-seconds": { type: "string", default: "6" },
    users: { type: "string", default: "6000" },
    "settle-seconds": { type: "string", default: "10" },
    "node-options": { type: "string", default: "" },
    "node-flags": { type: "string" },
    env: { type: "string", multiple: true, default: [] },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(usage);
  process.exit(0);
}
const streams = Number(values.streams);
const seconds = (name: "noop-seconds" | "verify-seconds" | "settle-seconds") => Number(values[name]) * 1000;
const log = (line: string) => process.stderr.write(`${line}\n`);
const workerCount = 2;

/** One process.memoryUsage() of the replica, and the committed bytes of its young (new_space) and
 * old (old_space) V8 generations, in bytes. */
type Usage = NodeJS.MemoryUsage & { young: number; old: number; gcMs: number; allocatedBytes: number };
/** What a row of the table shows, in bytes; the largest sample of the phase for every column. */
interface Row {
  phase: string;
  rss: number;
  peak: number;
  usage: Usage;
  callsPerSecond?: number;
  cpuMicrosPerCall?: number;
  /** GC pauses of the replica's main thread over the phase, µs per call. */
  gcMicrosPerCall?: number;
  /** GC pauses over the phase, ms. */
  gcMs: number;
  /** Bytes the replica allocated on the V8 heap over the phase. */
  allocatedBytes: number;
  /** Of those, KiB per call (load phases). */
  kibAllocatedPerCall?: number;
}

const probeDir = mkdtempSync(join(tmpdir(), "stepgate-memory-"));
const probe = join(import.meta.dirname, "memory-probe.mjs");
const cluster = await startBenchCluster({
  size: 1,
  databaseAdminUrl:
    process.env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
  redisUrl: process.env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
  basePort: 45_000 + Math.floor(Math.random() * 2000) * 4,
  nodeOptions: `--import=${probe} ${values["node-options"]}`.trim(),
  env: {
    ...Object.fromEntries(values.env.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)])),
    STEPGATE_MEMORY_PROBE_DIR: probeDir,
  },
  ...(values["node-flags"] === undefined
    ? {}
    : { nodeFlags: values["node-flags"].split(" ").filter(Boolean) }),
});
const replica = cluster.replicas[0];
const pid = replica?.pid ?? 0;
const workers = startLoadWorkers(workerCount);
const rows: Row[] = [];

const readUsage = (): Usage => {
  const read = JSON.parse(readFileSync(join(probeDir, `${pid}.json`), "utf8"));
  return {
    ...read,
    young: read.spaces.new_space ?? 0,
    old: read.spaces.old_space ?? 0,
    gcMs: read.gcMs ?? 0,
    allocatedBytes: read.allocatedBytes ?? 0,
  };
};
const zero: Usage = {
  rss: 0,
  heapTotal: 0,
  heapUsed: 0,
  external: 0,
  arrayBuffers: 0,
  young: 0,
  old: 0,
  gcMs: 0,
  allocatedBytes: 0,
};
const maxUsage = (a: Usage, b: Usage): Usage => ({
  rss: Math.max(a.rss, b.rss),
  heapTotal: Math.max(a.heapTotal, b.heapTotal),
  heapUsed: Math.max(a.heapUsed, b.heapUsed),
  external: Math.max(a.external, b.external),
  arrayBuffers: Math.max(a.arrayBuffers, b.arrayBuffers),
  young: Math.max(a.young, b.young),
  old: Math.max(a.old, b.old),
  gcMs: Math.max(a.gcMs, b.gcMs),
  allocatedBytes: Math.max(a.allocatedBytes, b.allocatedBytes),
});

/** Samples the replica every 250 ms while `work` runs; the row holds each column's largest sample. */
async function measure<T>(phase: string, work: () => Promise<T>): Promise<{ row: Row; result: T }> {
  resetPeakMemory(pid);
  const before = readUsage();
  let usage = zero;
  let rss = 0;
  const sample = () => {
    usage = maxUsage(usage, readUsage());
    rss = Math.max(rss, residentMemory(pid).rssBytes);
  };
  sample();
  const timer = setInterval(sample, 250);
  try {
    const result = await work();
    sample();
    const row = {
      phase,
      rss,
      peak: residentMemory(pid).peakBytes,
      usage,
      gcMs: usage.gcMs - before.gcMs,
      allocatedBytes: usage.allocatedBytes - before.allocatedBytes,
    };
    rows.push(row);
    return { row, result };
  } finally {
    clearInterval(timer);
  }
}

/** A load phase's rate and its costs per call: server CPU, and GC pauses. */
const perCall = (row: Row, phase: PhaseResult) => ({
  callsPerSecond: phase.throughput,
  cpuMicrosPerCall: phase.cpuMicrosPerCall.server,
  gcMicrosPerCall: phase.calls > 0 ? (row.gcMs * 1000) / phase.calls : Number.NaN,
  kibAllocatedPerCall: phase.calls > 0 ? row.allocatedBytes / 1024 / phase.calls : Number.NaN,
});

try {
  const users = await seedUsers(cluster.database.url, cluster.encryptionKeys, Number(values.users));
  await workers.all((i) => ({
    type: "init",
    target: cluster.target,
    caller: "payments",
    users: users.filter((_, j) => j % workerCount === i),
    grantsToKeep: 0,
  }));
  await measure("idle (started)", () => sleep(2000));
  const load = (durationMs: number) => ({
    kind: "closed" as const,
    concurrency: Math.ceil(streams / workerCount),
    durationMs,
  });
  log(`noop: ${streams} streams for ${seconds("noop-seconds") / 1000} s`);
  const noop = await measure(`noop, ${streams} streams`, () =>
    runPhase({ cluster, workers }, "noop", load(seconds("noop-seconds"))),
  );
  Object.assign(noop.row, perCall(noop.row, noop.result));
  log("verify: preparing one challenge per user");
  await workers.all(() => ({ type: "prepare-challenges", count: Math.ceil(users.length / workerCount) }));
  const verify = await measure(`verify, ${streams} streams`, () =>
    runPhase({ cluster, workers }, "verify", load(seconds("verify-seconds"))),
  );
  Object.assign(verify.row, perCall(verify.row, verify.result));
  log(`after: idle for ${seconds("settle-seconds") / 1000} s`);
  await sleep(seconds("settle-seconds"));
  await measure("after (idle)", () => sleep(1000));
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1).padStart(7);
  const header =
    "phase                    rss    peak heapUsed heapTotal   young     old external arrayBuf  calls/s µs CPU/call µs GC/call KiB alloc/call";
  const lines = rows.map(
    (r) =>
      `${r.phase.padEnd(20)}` +
      [r.rss, r.peak, r.usage.heapUsed, r.usage.heapTotal, r.usage.young, r.usage.old]
        .concat([r.usage.external, r.usage.arrayBuffers])
        .map((b) => ` ${mib(b)}`)
        .join(" ") +
      ` ${r.callsPerSecond === undefined ? "".padStart(8) : r.callsPerSecond.toFixed(0).padStart(8)}` +
      ` ${r.cpuMicrosPerCall === undefined ? "".padStart(10) : r.cpuMicrosPerCall.toFixed(0).padStart(10)}` +
      ` ${r.gcMicrosPerCall === undefined ? "".padStart(10) : r.gcMicrosPerCall.toFixed(0).padStart(10)}` +
      ` ${r.kibAllocatedPerCall === undefined ? "" : r.kibAllocatedPerCall.toFixed(1).padStart(15)}`,
  );
  const overall = residentMemory(pid).peakBytes;
  console.log(
    [
      `Stepgate replica memory, MiB (largest sample per phase; peak = VmHWM over the phase)` +
        `; flags: ${values["node-flags"] ?? replicaNodeFlags.join(" ")}` +
        (values["node-options"] ? `; NODE_OPTIONS=${values["node-options"]}` : "") +
        (values.env.length > 0 ? `; ${values.env.join(" ")}` : ""),
      header,
      ...lines,
      `peak of the run (VmHWM): ${mib(Math.max(overall, ...rows.map((r) => r.peak))).trim()} MiB`,
    ].join("\n"),
  );
} finally {
  await workers.close();
  await cluster.close();
  rmSync(probeDir, { recursive: true, force: true });
}
