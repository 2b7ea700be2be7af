// pnpm bench: starts Stepgate replicas against this machine's PostgreSQL and Redis, seeds users,
// drives every scenario from separate load generator processes, prints a table and writes JSON.
import { mkdirSync } from "node:fs";
import { join, relative } from "node:path";
import { startBenchCluster } from "./bench-cluster.ts";
import { parseBenchOptions, usage } from "./bench-options.ts";
import type { BenchResult, ClusterResult, OfflineVerifySummary } from "./bench-result.ts";
import { codeRevision } from "./code-revision.ts";
import { startLoadWorkers } from "./load-workers.ts";
import { describeMachine, type Machine } from "./machine.ts";
import { measureScenario, type ScenarioResult } from "./measure-scenario.ts";
import type { OfflineVerifyResult } from "./offline-verify.ts";
import { measureOverload, type OverloadResult } from "./overload.ts";
import { machineBusySeconds } from "./process-stats.ts";
import { formatReport } from "./report-table.ts";
import { writeResultsJson } from "./results-file.ts";
import { seedUsers } from "./seed-users.ts";
import { compareWithKeycloak, evaluateTargets, summarizeOfflineVerify } from "./targets.ts";

const caller = "payments";
const started = performance.now();
const startedAt = new Date();
// Read at the start: the server is what the replicas loaded then.
const code = codeRevision();
const log = (line: string) => process.stderr.write(`${line}\n`);

let options: ReturnType<typeof parseBenchOptions>;
try {
  options = parseBenchOptions(process.argv.slice(2), process.env);
} catch (error) {
  log(`${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
  process.exit(2);
}

// What to undo if the run is interrupted: replicas, the database, the Redis keys, the workers.
const cleanups: (() => Promise<void>)[] = [];
let cleaning: Promise<void> | undefined;
// Once only: a signal and the run's own error path may both ask, and both wait for the same work.
const cleanUp = () =>
  (cleaning ??= (async () => {
    for (const undo of cleanups.splice(0).reverse()) {
      await undo().catch((e: unknown) => log(`cleanup: ${String(e)}`));
    }
  })());
/** Undoes one thing now, unless a cleanup has taken it already. */
const release = async (undo: () => Promise<void>) => {
  const i = cleanups.indexOf(undo);
  if (i < 0) return;
  cleanups.splice(i, 1);
  await undo();
};
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: stopping replicas and removing the bench database`);
    // The run normally ends itself once its workers are gone; this is for when it does not.
    void cleanUp().then(() => setTimeout(() => process.exit(130), 5000).unref());
  });
}

// Other work on the machine skews every figure here: measure how busy it is before we start.
const idleBefore = machineBusySeconds();
await new Promise((resolve) => setTimeout(resolve, options.quick ? 200 : 1000));
const busyBeforeRun = (machineBusySeconds() - idleBefore) / (options.quick ? 0.2 : 1);

const clusters: ClusterResult[] = [];
let offline: OfflineVerifySummary | undefined;
let versions = { postgres: "unknown", redis: "unknown" };
let broken: string | undefined;

try {
  for (const size of options.replicas) {
    if (interrupted) throw new Error("interrupted");
    log(`== ${size} replica${size > 1 ? "s" : ""}`);
    const cluster = await startBenchCluster({
      size,
      databaseAdminUrl: options.databaseUrl,
      redisUrl: options.redisUrl,
      basePort: options.basePort + clusters.length * 10,
    });
    const closeCluster = async () => {
      await cluster.close();
    };
    cleanups.push(closeCluster);
    versions = { postgres: await cluster.database.version(), redis: (await cluster.redis.info()).version };

    const seedStarted = performance.now();
    const users = await seedUsers(cluster.database.url, cluster.encryptionKeys, options.users);
    const seeding = { users: users.length, seconds: (performance.now() - seedStarted) / 1000 };
    log(`  seeded ${users.length} users in ${seeding.seconds.toFixed(1)} s`);

    // The overload scenario's critical flows get a generator and users of their own.
    const criticalShare = options.overload ? Math.floor(users.length / 4) : 0;
    const criticalUsers = users.slice(users.length - criticalShare);
    const workerUsers = users.slice(0, users.length - criticalShare);
    const workers = startLoadWorkers(options.workers);
    const closeWorkers = () => workers.close();
    cleanups.push(closeWorkers);
    await workers.all((i) => ({
      type: "init",
      target: cluster.target,
      caller,
      // Each worker has users of its own: a user's TOTP step must not be raced by two generators.
      users: workerUsers.filter((_, j) => j % workers.size === i),
      grantsToKeep: Math.ceil(options.offline.grants / workers.size) + 1,
    }));
    const sessions = (
      await workers.all<number>(() => ({ type: "prepare-sessions", count: options.sessions }))
    ).reduce((a, b) => a + b, 0);

    // Every replica gets the same warm-up traffic, however many share it.
    const plan = {
      ...options.plan,
      initialWarmupMs: options.plan.initialWarmupMs * size,
      warmupMs: options.plan.warmupMs * size,
    };
    await workers.all(() => ({
      type: "run",
      scenario: "noop",
      load: { kind: "closed", concurrency: plan.concurrency, durationMs: plan.initialWarmupMs },
    }));

    const scenarios: ScenarioResult[] = [];
    // Verify needs one prepared challenge per call; stepup-challenge leaves many, and its rate says
    // how fast more can be made. Until it is measured, a guess.
    let challengeRate = 500;
    for (const scenario of options.scenarios) {
      if (interrupted) throw new Error("interrupted");
      const result = await measureScenario(scenario, {
        cluster,
        workers,
        plan,
        challengesForSaturation:
          (challengeRate * 1.5 * (plan.warmupMs + plan.saturationMs)) / 1000 / workers.size,
        log,
      });
      if (scenario === "stepup-challenge") challengeRate = result.saturation.throughput;
      scenarios.push(result);
    }

    // The baseline again, saturation only: CPU per call drifts when the host under this machine
    // gets busier, and a ratio between two moments needs to know by how much.
    const noopAgain = options.scenarios.includes("noop")
      ? await measureScenario("noop", {
          cluster,
          workers,
          plan: { ...plan, fractions: [] },
          challengesForSaturation: 0,
          log,
        })
      : undefined;

    if (offline === undefined && options.scenarios.includes("stepup-elevated")) {
      const grants = [...new Set((await workers.all<string[]>(() => ({ type: "grants" }))).flat())];
      log(`  offline verifyGrant over ${Math.min(grants.length, options.offline.grants)} grants`);
      const measured = await workers.send<OfflineVerifyResult>(0, {
        type: "offline",
        tokens: grants.slice(0, options.offline.grants),
        rounds: options.offline.rounds,
        cachedCalls: options.offline.cachedCalls,
      });
      offline = summarizeOfflineVerify(measured);
    }

    // Read before the overload scenario, which resets each replica's peak for its own phases.
    const memoryBefore = cluster.memory();
    let overload: OverloadResult | undefined;
    if (options.overload) {
      if (interrupted) throw new Error("interrupted");
      const critical = startLoadWorkers(1);
      const closeCritical = () => critical.close();
      cleanups.push(closeCritical);
      await critical.all(() => ({
        type: "init",
        target: cluster.target,
        caller,
        users: criticalUsers,
        grantsToKeep: 0,
      }));
      overload = await measureOverload({
        cluster,
        workers,
        critical,
        plan,
        overload: options.overload,
        flowRateHint: scenarios.find((s) => s.scenario === "verify")?.saturation.throughput || 500,
        log,
      });
      await release(closeCritical);
    }
    const memoryAfter = cluster.memory();
    const memory = memoryAfter.map((m) => ({
      ...m,
      peakBytes: Math.max(m.peakBytes, memoryBefore.find((b) => b.id === m.id)?.peakBytes ?? 0),
    }));
    const replicaWarnings = cluster.replicas.flatMap((r) => r.lines).slice(0, 20);
    clusters.push({
      replicas: size,
      seeding,
      sessions,
      scenarios,
      noopAgain,
      memory,
      replicaWarnings,
      ...(overload ? { overload } : {}),
    });
    await release(closeWorkers);
    await release(closeCluster);
  }
} catch (error) {
  broken = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log(`bench failed: ${broken}`);
} finally {
  await cleanUp();
}

const machine: Machine = describeMachine(versions, startedAt);
const allPhases = clusters.flatMap((c) =>
  [...c.scenarios, ...(c.noopAgain ? [c.noopAgain] : [])].flatMap((s) => [
    s.warmup,
    s.saturation,
    ...s.rates,
  ]),
);
const failures = allPhases.reduce((n, p) => n + p.failures, 0);
const idle = clusters.flatMap((c) => {
  const o = c.overload;
  const overloadIdle =
    o &&
    [o.listFactors.saturation, o.criticalFlows.saturation, o.baseline, o.criticalUnderFlood].some(
      (p) => p.calls === 0,
    );
  return [
    ...c.scenarios
      .filter((s) => s.saturation.calls === 0 || s.rates.some((r) => r.calls === 0))
      .map((s) => `${s.scenario} (${c.replicas})`),
    ...(overloadIdle ? [`overload (${c.replicas})`] : []),
  ];
});
// Shed and rate-limited calls are what the overload scenario expects: only a crash fails the run.
const crashed = clusters.flatMap((c) =>
  (c.overload?.replicasDown ?? []).map((r) => `${r.id} (${c.replicas}): ${r.exit}`),
);
const result: BenchResult = {
  command: `node bench/src/main.ts ${process.argv.slice(2).join(" ")}`.trim(),
  quick: options.quick,
  code,
  machine,
  notes: [
    ...(options.quick
      ? [
          "--quick: 0.5 s phases on code the JIT has barely seen; the figures only show that every scenario runs.",
        ]
      : []),
    `All of it runs on this machine's ${machine.cores} cores: PostgreSQL, Redis, the replicas and ${options.workers} load generator processes share them, so saturation is the machine's, not one replica's.`,
    "Three replicas on the same cores add processes, not CPU: compare CPU per call, not throughput, across cluster sizes.",
    "CPU per call: replicas' and stores' own accounting (/proc/<pid>/stat utime+stime) over the saturation phase, per successful call; x noop is over the mean of the two noop runs (first and last).",
    "Latency at 25/50/75% of saturation: open loop, timed from each call's scheduled start (queueing included).",
    "Users are written to PostgreSQL directly with the server's key ring and row binding (two RPCs each through the API).",
    ...(options.overload
      ? [
          `Overload: the flood's generators, the critical flows' generator, the stores and the replicas share the same ${machine.cores} cores; the generators' CPU is CPU the replicas do not get, so latency under the flood is the machine's as much as the service's. The flood is stopped only by admission control: the rate limits are out of reach.`,
        ]
      : []),
    `Before the run, other processes kept ${busyBeforeRun.toFixed(2)} cores busy; each cluster's line "CPU of other processes" says how much during it.`,
  ],
  options: { ...options, basePort: undefined },
  busyCoresBeforeRun: busyBeforeRun,
  clusters,
  offlineVerify: offline,
  targets: evaluateTargets(clusters, offline),
  keycloak: { referencePerVcpu: [120, 240], stepgate: compareWithKeycloak(clusters, machine.cores) },
  failures,
  seconds: (performance.now() - started) / 1000,
};

mkdirSync(options.outDir, { recursive: true });
const file = join(options.outDir, `bench-${machine.date.replaceAll(":", "-").replace(/\..*$/, "")}.json`);
writeResultsJson(file, { ...result, error: broken });
console.log(formatReport(result));
console.log(`\nJSON: ${relative(process.cwd(), file)}`);
if (idle.length > 0) log(`no successful call in a phase of: ${idle.join(", ")}`);
if (crashed.length > 0) log(`replicas crashed: ${crashed.join(", ")}`);
process.exit(
  interrupted ? 130 : broken !== undefined || failures > 0 || idle.length > 0 || crashed.length > 0 ? 1 : 0,
);
