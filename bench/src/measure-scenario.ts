import { type BenchCluster, cpuUsed } from "./bench-cluster.ts";
import { type LatencySummary, summarizeLatency } from "./latency-summary.ts";
import type { LoadWorkers } from "./load-workers.ts";
import { cpuSeconds, machineBusySeconds } from "./process-stats.ts";
import type { CallName, Load, PhaseSample, Refusals, ScenarioName } from "./worker-messages.ts";

export interface PhasePlan {
  /** Noop in a closed loop once per cluster before anything is measured: the gRPC path every
   * scenario shares (grpc-js, HTTP/2, the bridge) runs cold for thousands of calls. */
  initialWarmupMs: number;
  /** Closed loop before each saturation phase, not measured: the scenario's own code, pools. */
  warmupMs: number;
  saturationMs: number;
  /** Calls in flight per worker at saturation. */
  concurrency: number;
  /** Each open-loop phase's length. */
  rateMs: number;
  /** Offered rates, as fractions of the measured saturation throughput. */
  fractions: number[];
}

export interface PhaseResult {
  /** What was offered: closed-loop concurrency over all workers, or an open-loop rate per second. */
  load:
    | { kind: "closed"; concurrency: number }
    | { kind: "open"; fraction: number; offeredPerSecond: number };
  /** Successful calls. */
  calls: number;
  failures: number;
  errors: Record<string, number>;
  /** For want of prepared work (a challenge for Verify): in open loop the calls not started, in
   * closed loop the lanes that stopped before the end. */
  unstarted: number;
  seconds: number;
  /** Successful calls per second. */
  throughput: number;
  /** From the scheduled start in open loop (queueing in the generator included); from the send in closed loop. */
  latency: LatencySummary;
  /** From the send. */
  serviceLatency: LatencySummary;
  /** The worst generator's event loop delay, ms: when it is near the latency tail, the tail is the generator's. */
  generatorLoopDelayMs: { p99: number; max: number };
  /** Calls refused by traffic shaping (OVERLOADED, RATE_LIMITED), and how many carried RetryInfo. */
  refusals: Refusals;
  /** How long refused calls took to be refused, timed as `latency` is. */
  refusalLatency: LatencySummary;
  /** CPU per successful call, microseconds: every replica process, the stores working for them
   * (this database's PostgreSQL backends, PostgreSQL's background processes, Redis), the generators. */
  cpuMicrosPerCall: { server: number; stores: number; generators: number };
  /** CPU over the phase in cores (CPU seconds per second): the replicas, and the whole machine,
   * and what neither this run's processes nor the stores account for (other work on the machine). */
  cores: { server: number; machine: number; other: number };
}

export interface ScenarioResult {
  scenario: ScenarioName;
  /** The unmeasured warm-up; its failures count as failures of the run all the same. */
  warmup: { calls: number; failures: number; errors: Record<string, number> };
  saturation: PhaseResult;
  rates: PhaseResult[];
}

export interface ScenarioContext {
  cluster: BenchCluster;
  workers: LoadWorkers;
  plan: PhasePlan;
  /** Verify: how many challenges each worker prepares before saturation (each Verify uses one). */
  challengesForSaturation: number;
  /** Progress lines. */
  log(line: string): void;
}

/** Saturation (closed loop) with CPU accounting, then open loop at fractions of that throughput. */
export async function measureScenario(scenario: ScenarioName, ctx: ScenarioContext): Promise<ScenarioResult> {
  const { workers, plan } = ctx;
  const prepare = async (perWorker: number) => {
    if (scenario !== "verify") return;
    const ready = await workers.all<number>(() => ({
      type: "prepare-challenges",
      count: Math.ceil(perWorker),
    }));
    if (ready.some((n) => n < perWorker)) ctx.log(`  (only ${ready.join("+")} challenges could be prepared)`);
  };
  await prepare(ctx.challengesForSaturation);
  const warm = await runPhase(ctx, scenario, {
    kind: "closed",
    concurrency: plan.concurrency,
    durationMs: plan.warmupMs,
  });
  const warmup = { calls: warm.calls, failures: warm.failures, errors: warm.errors };
  const saturation = await runPhase(ctx, scenario, {
    kind: "closed",
    concurrency: plan.concurrency,
    durationMs: plan.saturationMs,
  });
  ctx.log(
    `  ${scenario}: saturation ${Math.round(saturation.throughput)}/s, ` +
      `${saturation.cpuMicrosPerCall.server.toFixed(0)} µs server CPU/call`,
  );
  const rates: PhaseResult[] = [];
  for (const fraction of plan.fractions) {
    // Nothing to offer when saturation completed no call: the empty phase is reported as such.
    const offered = Number.isFinite(saturation.throughput) ? saturation.throughput * fraction : 0;
    const perWorker = offered / workers.size;
    await prepare((perWorker * plan.rateMs) / 1000 + 5);
    const phase = await runPhase(ctx, scenario, {
      kind: "open",
      ratePerSecond: perWorker,
      durationMs: plan.rateMs,
    });
    phase.load = { kind: "open", fraction, offeredPerSecond: offered };
    rates.push(phase);
  }
  return { scenario, warmup, saturation, rates };
}

/** One phase of `call` on every worker of `ctx.workers`, with CPU accounting. */
export async function runPhase(
  ctx: Pick<ScenarioContext, "cluster" | "workers">,
  call: CallName,
  load: Load,
): Promise<PhaseResult> {
  const { cluster, workers } = ctx;
  const before = await cluster.cpu();
  const generatorsBefore = workers.pids.map((pid) => cpuSeconds(pid));
  const benchBefore = cpuSeconds(process.pid);
  const machineBefore = machineBusySeconds();
  const samples = await workers.all<PhaseSample>(() => ({ type: "run", scenario: call, load }));
  const after = await cluster.cpu();
  const machine = machineBusySeconds() - machineBefore;
  const bench = cpuSeconds(process.pid) - benchBefore;
  const generators = workers.pids.reduce(
    (sum, pid, i) => sum + cpuSeconds(pid) - (generatorsBefore[i] ?? 0),
    0,
  );
  const used = cpuUsed(before, after);
  return summarizePhase(load, samples, workers.size, {
    replicas: used.replicas,
    stores: used.stores,
    generators,
    machine,
    bench,
  });
}

/** CPU seconds spent over a phase, by whom; `bench` is this process's own. */
export interface PhaseCpu {
  replicas: number;
  stores: number;
  generators: number;
  machine: number;
  bench: number;
}

/** Adds up what the workers saw in one phase of `load` (each worker ran `load`). */
export function summarizePhase(
  load: Load,
  samples: PhaseSample[],
  workerCount: number,
  spent: PhaseCpu,
): PhaseResult {
  const { generators, machine, bench } = spent;
  const used = { replicas: spent.replicas, stores: spent.stores };
  const failures = samples.reduce((n, s) => n + s.failures, 0);
  const calls = samples.reduce((n, s) => n + s.calls, 0) - failures;
  const seconds = Math.max(...samples.map((s) => s.elapsedMs)) / 1000;
  const errors: Record<string, number> = {};
  for (const s of samples) for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;
  const perCall = (cpu: number) => (calls > 0 ? (cpu / calls) * 1e6 : Number.NaN);
  return {
    load:
      load.kind === "closed"
        ? { kind: "closed", concurrency: load.concurrency * workerCount }
        : { kind: "open", fraction: Number.NaN, offeredPerSecond: load.ratePerSecond * workerCount },
    calls,
    failures,
    errors,
    unstarted: samples.reduce((n, s) => n + s.unstarted, 0),
    seconds,
    throughput: seconds > 0 ? calls / seconds : 0,
    latency: summarizeLatency(samples.map((s) => s.latenciesMs)),
    serviceLatency: summarizeLatency(samples.map((s) => s.serviceLatenciesMs)),
    generatorLoopDelayMs: {
      p99: Math.max(...samples.map((s) => s.loopDelayMs.p99)),
      max: Math.max(...samples.map((s) => s.loopDelayMs.max)),
    },
    refusals: addRefusals(samples.map((s) => s.refusals)),
    refusalLatency: summarizeLatency(samples.map((s) => s.refusalLatenciesMs)),
    cpuMicrosPerCall: {
      server: perCall(used.replicas),
      stores: perCall(used.stores),
      generators: perCall(generators),
    },
    cores: {
      server: used.replicas / seconds,
      machine: machine / seconds,
      other: Math.max(0, machine - used.replicas - used.stores - generators - bench) / seconds,
    },
  };
}

/** The sum of several counts of refusals. */
export function addRefusals(list: Refusals[]): Refusals {
  const sum: Refusals = {
    shed: 0,
    shedWithRetryInfo: 0,
    shedWithPushback: 0,
    limited: 0,
    limitedWithRetryInfo: 0,
  };
  for (const r of list) {
    for (const key of Object.keys(sum) as (keyof Refusals)[]) sum[key] += r[key];
  }
  return sum;
}
