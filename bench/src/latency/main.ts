// pnpm bench:latency: latency that measures Stepgate rather than its load generators (h2load for
// the calls that can repeat, many small Node generators for Verify), and what StepUp and Verify
// cost as the enrolled users and the replicas grow. Prints tables, writes JSON and an SVG chart.
import { mkdirSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { type BenchCluster, startBenchCluster } from "../bench-cluster.ts";
import { codeRevision } from "../code-revision.ts";
import { describeMachine } from "../machine.ts";
import { writeResultsJson } from "../results-file.ts";
import { type CostPoint, measureCostPoint } from "./cost-part.ts";
import { h2loadVersion } from "./h2load.ts";
import { latencyUsage, parseLatencyOptions } from "./latency-options.ts";
import { measureLatencyPart } from "./latency-part.ts";
import type { LatencyScenario } from "./latency-phase.ts";
import { costPanels, formatCostTable, formatLatencyTable, plotPoints } from "./latency-report.ts";
import { seedPopulation } from "./seed-population.ts";
import { renderChart } from "./svg-chart.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = performance.now();
const startedAt = new Date();
const code = codeRevision();

let options: ReturnType<typeof parseLatencyOptions>;
try {
  options = parseLatencyOptions(process.argv.slice(2), process.env);
} catch (error) {
  log(`${error instanceof Error ? error.message : String(error)}\n\n${latencyUsage}`);
  process.exit(2);
}

const h2load = options.parts.latency ? h2loadVersion() : undefined;
if (options.parts.latency && h2load === undefined)
  log(
    "h2load not found: the h2load scenarios (noop, stepup-elevated, checkgrant, getjwks) are skipped, and with " +
      "them the no-op floor. Install it with `apt-get install -y nghttp2-client` (Debian/Ubuntu). Verify and the " +
      "cost part still run.",
  );

let cluster: BenchCluster | undefined;
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: stopping replicas and removing the bench database`);
    void (cluster?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

let latency: LatencyScenario[] | undefined;
const cost: CostPoint[] = [];
let versions = { postgres: "unknown", redis: "unknown" };
let broken: string | undefined;
/** A fresh database and Redis prefix with `size` replicas and `total` users seeded. */
const population = async (size: number, total: number, known: number, index: number) => {
  cluster = await startBenchCluster({
    size,
    databaseAdminUrl: options.databaseUrl,
    redisUrl: options.redisUrl,
    basePort: options.basePort + index * 10,
    cpuList: options.cores.replicas,
  });
  versions = { postgres: await cluster.database.version(), redis: (await cluster.redis.info()).version };
  const seeded = await seedPopulation(cluster.database.url, cluster.encryptionKeys, total, known);
  const { seeding } = seeded;
  log(
    `  seeded ${total} users (${seeding.known} known) in ${seeding.seconds.toFixed(1)} s, ` +
      `vacuum analyze ${seeding.analyzeSeconds.toFixed(1)} s`,
  );
  return { cluster, ...seeded };
};
try {
  if (options.parts.latency) {
    log(`== latency: 1 replica, ${options.latencyUsers.toLocaleString("en-US")} users`);
    const { cluster: c, users } = await population(1, options.latencyUsers, options.latencyUsers, 0);
    const [fixedUser, ...rest] = users;
    if (fixedUser) latency = await measureLatencyPart(c, fixedUser, rest, options, h2load, log);
    await c.close();
    cluster = undefined;
  }
  if (options.parts.cost) {
    const maxReplicas = Math.max(...options.replicas);
    for (const [i, total] of options.users.entries()) {
      if (interrupted) throw new Error("interrupted");
      log(`== cost: ${total.toLocaleString("en-US")} users, ${maxReplicas} replicas started`);
      const { cluster: c, users, seeding } = await population(maxReplicas, total, options.knownUsers, i + 1);
      // Disjoint users per replica count: a user passes Verify once per 30 s step, and each run's
      // generators are new (they do not know which steps the last ones used).
      for (const [j, replicas] of options.replicas.entries()) {
        if (interrupted) throw new Error("interrupted");
        log(`  ${replicas} replica${replicas > 1 ? "s" : ""}`);
        const mine = users.filter((_, k) => k % options.replicas.length === j);
        cost.push(await measureCostPoint(c, replicas, mine, seeding, options, log));
      }
      await c.close();
      cluster = undefined;
    }
  }
} catch (error) {
  broken = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log(`bench:latency failed: ${broken}`);
} finally {
  await cluster?.close().catch((e: unknown) => log(`cleanup: ${String(e)}`));
}

const machine = describeMachine(versions, startedAt);
const plot = plotPoints(cost);
const stamp = machine.date.replaceAll(":", "-").replace(/\..*$/, "");
mkdirSync(options.outDir, { recursive: true });
const file = join(options.outDir, `latency-${stamp}.json`);
const result = {
  command: `node bench/src/latency/main.ts ${process.argv.slice(2).join(" ")}`.trim(),
  code,
  machine,
  h2load: h2load ?? null,
  options: { ...options, basePort: undefined },
  notes: [
    `Replicas pinned to core(s) ${options.cores.replicas}, h2load and the Node generators to ${options.cores.generators} (taskset); PostgreSQL and Redis run where the kernel puts them.`,
    "h2load latency: from each request's send to its response's end (its --log-file); h2load sends on its own schedule (--rps per connection) with far more streams allowed than the rate needs.",
    "Node generators' latency (Verify, StepUp): from each call's scheduled start; their event loop delay beyond the 1 ms monitor tick is reported beside it.",
    "CPU per call: /proc utime+stime of the replicas measured (idle ones left out), per successful call; saturation phase in the tables, every phase in the JSON.",
    "Filler users: rows written by PostgreSQL (generate_series) with a random secret of a sealed secret's length, never opened; the known users are sealed as the server seals them.",
  ],
  latency: latency ?? null,
  cost,
  plot,
  seconds: (performance.now() - started) / 1000,
  error: broken ?? null,
};
writeResultsJson(file, result);
const outputs = [relative(process.cwd(), file)];
if (plot.length > 0) {
  const svg = join(options.outDir, `latency-${stamp}.svg`);
  writeFileSync(
    svg,
    renderChart(costPanels(plot), `${machine.cpuModel}, ${machine.cores} cores, ${machine.date}`),
  );
  outputs.push(relative(process.cwd(), svg));
}
if (latency)
  console.log(
    `== latency (1 replica, ${options.latencyUsers.toLocaleString("en-US")} users)\n${formatLatencyTable(latency)}\n`,
  );
if (cost.length > 0)
  console.log(`== cost as the work grows (CPU per call at saturation)\n${formatCostTable(cost)}\n`);
console.log(`written: ${outputs.join(", ")}`);
process.exit(interrupted ? 130 : broken !== undefined ? 1 : 0);
