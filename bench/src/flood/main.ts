// pnpm bench:overload: floods from h2load (a C client, on its own core, closed loop, no retries)
// beside critical StepUp -> Verify flows from a client of their own; one replica and three. Prints
// the critical flows' success, p50 and p99 without and with each flood, writes JSON and an SVG chart.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { type BenchCluster, startBenchCluster } from "../bench-cluster.ts";
import { codeRevision } from "../code-revision.ts";
import { h2loadVersion } from "../latency/h2load.ts";
import { seedPopulation } from "../latency/seed-population.ts";
import { renderChart } from "../latency/svg-chart.ts";
import { startWarmWorkers } from "../latency/warm-workers.ts";
import { describeMachine } from "../machine.ts";
import { runPhase } from "../measure-scenario.ts";
import { writeResultsJson } from "../results-file.ts";
import { floodUsage, parseFloodOptions, withSweepDefault } from "./flood-options.ts";
import { formatFloodTable, sweepPanels } from "./flood-report.ts";
import { type FloodPoint, measureFloodPoint } from "./flood-run.ts";
import { prepareFlood } from "./floods.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = performance.now();
const startedAt = new Date();
const examplePolicy = join(import.meta.dirname, "../../../services/stepgate/policy/example.yaml");

let options: ReturnType<typeof parseFloodOptions>;
try {
  options = parseFloodOptions(withSweepDefault(process.argv.slice(2)), process.env);
} catch (error) {
  log(`${error instanceof Error ? error.message : String(error)}\n\n${floodUsage}`);
  process.exit(2);
}
const h2load = h2loadVersion();
if (h2load === undefined) {
  log("h2load not found: install it with `apt-get install -y nghttp2-client` (Debian/Ubuntu)");
  process.exit(2);
}

let cluster: BenchCluster | undefined;
for (const signal of ["SIGINT", "SIGTERM"] as const)
  process.once(signal, () => {
    log(`${signal}: stopping replicas and removing the bench database`);
    void (cluster?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  });

const points: FloodPoint[] = [];
const sweep: FloodPoint[] = [];
const crashed: string[] = [];
let versions = { postgres: "unknown", redis: "unknown" };
let broken: string | undefined;

/** Every flood, then the sweep, on a fresh cluster of `size` replicas with the example policy. */
async function measureCluster(size: number, index: number) {
  log(`== ${size} replica${size === 1 ? "" : "s"}, pinned to core(s) ${options.cores.replicas}`);
  const c = await startBenchCluster({
    size,
    databaseAdminUrl: options.databaseUrl,
    redisUrl: options.redisUrl,
    basePort: options.basePort + index * 10,
    policyFile: examplePolicy,
    cpuList: options.cores.replicas,
  });
  cluster = c;
  versions = { postgres: await c.database.version(), redis: (await c.redis.info()).version };
  const { users } = await seedPopulation(c.database.url, c.encryptionKeys, options.users, options.users);
  const [floodUser, ...flowUsers] = users;
  if (!floodUser) throw new Error("no user seeded");
  const critical = await startWarmWorkers(1, options.cores.generators, c.target, flowUsers, {
    concurrency: 16,
    durationMs: 3000,
  });
  try {
    const ctx = {
      cluster: c,
      critical,
      criticalPerSecond: options.criticalPerSecond,
      cpuList: options.cores.generators,
    };
    // Unmeasured: the flows' own code paths run cold at first.
    await runPhase({ cluster: c, workers: critical }, "critical-flow", {
      kind: "open",
      ratePerSecond: options.criticalPerSecond * 2,
      durationMs: 2000,
    });
    const addresses = c.replicas.map((r) => r.address);
    const measure = async (name: (typeof options.floods)[number], streams: number) => {
      const flood = await prepareFlood(name, streams, addresses, floodUser.subject);
      const point = await measureFloodPoint(ctx, flood, options.baselineSeconds, options.floodSeconds);
      log(
        `  ${name} ${point.totals.streams} streams: ${Math.round(point.totals.answeredPerSecond)}/s answered, ` +
          `critical ${(point.underFlood.successRate * 100).toFixed(1)}% ok, p99 ${point.underFlood.p99Ms.toFixed(1)} ms ` +
          `(alone ${point.baseline.p99Ms.toFixed(1)} ms)`,
      );
      return point;
    };
    for (const name of options.floods) points.push(await measure(name, options.streams));
    for (const streams of options.sweep) sweep.push(await measure("one-caller", streams));
    for (const r of c.replicas) if (!r.running) crashed.push(`${r.id}: ${String(await r.exited())}`);
  } finally {
    await critical.close();
    await c.close();
    cluster = undefined;
  }
}

try {
  for (const [i, size] of options.replicas.entries()) await measureCluster(size, i);
} catch (error) {
  broken = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log(`bench:overload failed: ${broken}`);
} finally {
  await cluster?.close().catch((e: unknown) => log(`cleanup: ${String(e)}`));
}

const machine = describeMachine(versions, startedAt);
const stamp = machine.date.replaceAll(":", "-").replace(/\..*$/, "");
mkdirSync(options.outDir, { recursive: true });
const file = join(options.outDir, `overload-${stamp}.json`);
const result = {
  command: `node bench/src/flood/main.ts ${process.argv.slice(2).join(" ")}`.trim(),
  code: codeRevision(),
  machine,
  h2load,
  options: { ...options, basePort: undefined },
  notes: [
    `Replicas pinned to core(s) ${options.cores.replicas}; h2load and the critical flows' client to ${options.cores.generators}; PostgreSQL and Redis where the kernel puts them. Example policy (its rate limits apply).`,
    "Critical flows: StepUp (payments.transfer, critical) then Verify, open loop, each timed from its scheduled start, through @stepgate/client with its default deadlines and retries.",
    "Floods: h2load closed loop, no retries; served = answers with a body, refused = gRPC errors (trailers only).",
  ],
  points,
  sweep,
  crashed,
  seconds: (performance.now() - started) / 1000,
  error: broken ?? null,
};
writeResultsJson(file, result);
const outputs = [relative(process.cwd(), file)];
if (sweep.length > 0) {
  const svg = join(options.outDir, `overload-${stamp}.svg`);
  writeFileSync(
    svg,
    renderChart(sweepPanels(sweep), `${machine.cpuModel}, ${machine.cores} cores, ${machine.date}`),
  );
  outputs.push(relative(process.cwd(), svg));
}
if (points.length > 0) console.log(`== floods beside critical flows\n${formatFloodTable(points)}\n`);
if (sweep.length > 0) console.log(`== sweep: one caller, growing flood\n${formatFloodTable(sweep)}\n`);
if (crashed.length > 0) console.log(`replicas that ended during the run: ${crashed.join("; ")}`);
console.log(`written: ${outputs.join(", ")}`);
const noFlows = [...points, ...sweep].some(
  (p) => p.baseline.succeeded === 0 || p.totals.answeredPerSecond === 0,
);
process.exit(broken !== undefined || crashed.length > 0 || noFlows ? 1 : 0);
