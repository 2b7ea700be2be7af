// The overload scenario: a flood of low-priority calls at three times what the cluster can serve,
// with a steady stream of critical step-ups beside it. Do the critical flows still pass, and as fast?
// Does every refused call say when to come back? Do the replicas hold, and recover when it stops?
import { setPriority } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { type BenchCluster, type CpuSnapshot, cpuUsed, type ReplicaMemory } from "./bench-cluster.ts";
import type { LoadWorkers } from "./load-workers.ts";
import {
  addRefusals,
  type PhaseCpu,
  type PhasePlan,
  type PhaseResult,
  runPhase,
  summarizePhase,
} from "./measure-scenario.ts";
import { cpuSeconds, machineBusySeconds } from "./process-stats.ts";
import { floodCaller } from "./scenario-calls.ts";
import type { FloodSample, Load, PhaseSample, Refusals } from "./worker-messages.ts";

export interface OverloadPlan {
  /** How long the flood lasts, in ms. */
  floodMs: number;
  /** Critical flows alone before the flood, in ms: their latency without it, and the replicas'
   * memory peak without it. */
  baselineMs: number;
  /** The closed loop of ListFactors after the flood, in ms, for the recovery. */
  recoveryMs: number;
  /** The recovery's resolution, in ms. */
  bucketMs: number;
  /** The flood's rate as a multiple of ListFactors' saturation throughput. */
  floodFactor: number;
  /** A flood call its generator comes to more than this many ms late is dropped, not sent: a
   * generator that sent every late call in a burst would fall ever further behind. */
  floodMaxLagMs: number;
  /** The critical flows' rate as a share of the flows' saturation throughput. */
  criticalFraction: number;
  /** Recovered once ListFactors' throughput is back to this share of its saturation throughput. */
  recoveredAt: number;
  /** Wait for the next 30 s TOTP step when the workers have too few users left for the flows'
   * saturation (otherwise its lanes may run dry and the saturation comes out low); when false, wait
   * only when they have too few to fill the closed loop's lanes. */
  waitForTotpStep: boolean;
}

export interface OverloadContext {
  cluster: BenchCluster;
  /** The generators of the other scenarios: the saturation phases and the flood. */
  workers: LoadWorkers;
  /** A generator process of its own for the critical flows, with users of its own: the flood's
   * generators stall under their load, and the critical flows' latency must not be theirs. */
  critical: LoadWorkers;
  /** Warm-up and saturation phases and their concurrency, as the other scenarios have them. */
  plan: PhasePlan;
  overload: OverloadPlan;
  /** A guess at the flows' saturation throughput (per second), to know how many users it needs. */
  flowRateHint: number;
  log(line: string): void;
}

/** One replica's peak resident memory (VmHWM, reset at the start of each phase). */
export interface OverloadMemory {
  id: string;
  /** Over the critical flows alone (the baseline). */
  unloadedPeakBytes: number;
  /** Over the flood, read the moment its schedule ends. */
  floodPeakBytes: number;
  /** Over the flood and the recovery after it. */
  withRecoveryPeakBytes: number;
}

export interface OverloadResult {
  plan: OverloadPlan;
  /** The flood's calling service (stepgate-caller). */
  floodCaller: string;
  /** FactorService/ListFactors (priority low) in a closed loop: the flood's and the recovery's yardstick. */
  listFactors: { warmup: PhaseResult; saturation: PhaseResult };
  /** StepUp (payments.transfer, critical) then Verify in a closed loop: the critical rate's yardstick. */
  criticalFlows: { warmup: PhaseResult; saturation: PhaseResult };
  /** Offered per second: the flood (ListFactors), the critical flows. */
  floodPerSecond: number;
  criticalPerSecond: number;
  /** Critical flows without the flood, then during it: open loop, timed from each flow's scheduled start. */
  baseline: PhaseResult;
  criticalUnderFlood: PhaseResult;
  /** The flood's ListFactors calls (`cores` over the flood's schedule, not its drain). */
  flood: PhaseResult & {
    /** Calls sent, and at what rate the generators managed to send them. */
    sent: number;
    sentPerSecond: number;
    /** Calls the generators came to too late (`floodMaxLagMs`) and did not send. */
    dropped: number;
    /** How late the latest call left after its scheduled time, ms (the generators' lag). */
    maxSendLagMs: number;
  };
  /** ListFactors closed loop from the moment the flood's schedule ended. */
  recovery: {
    phase: PhaseResult;
    thresholdPerSecond: number;
    bucketMs: number;
    /** Successful calls per second in each bucket. */
    perSecond: number[];
    /** The end of the first bucket at the threshold whose next second (its bucket included) averages
     * at the threshold too; null if none within the recovery phase. */
    recoveredAfterMs: number | null;
  };
  /** Over every phase of the scenario. */
  refusals: Refusals;
  memory: {
    /** False if VmHWM could not be reset: then every peak is the process's since it started. */
    peakReset: boolean;
    replicas: OverloadMemory[];
  };
  /** Replicas that were not running at the end of the scenario, with how they ended. */
  replicasDown: { id: string; exit: string }[];
  /** What the replicas logged (warn and above) during the scenario, by level, message and dependency. */
  replicaEvents: Record<string, number>;
}

/** CPU counters at one moment, for a window's CPU accounting. */
interface Mark {
  cpu: CpuSnapshot;
  generators: number[];
  bench: number;
  machine: number;
  at: number;
}

export async function measureOverload(ctx: OverloadContext): Promise<OverloadResult> {
  const { cluster, workers, critical, plan, overload, log } = ctx;
  const pids = [...workers.pids, ...critical.pids];
  const mark = async (): Promise<Mark> => ({
    cpu: await cluster.cpu(),
    generators: pids.map((pid) => cpuSeconds(pid)),
    bench: cpuSeconds(process.pid),
    machine: machineBusySeconds(),
    at: performance.now(),
  });
  const spent = (a: Mark, b: Mark): PhaseCpu => ({
    ...cpuUsed(a.cpu, b.cpu),
    generators: b.generators.reduce((sum, s, i) => sum + s - (a.generators[i] ?? 0), 0),
    machine: b.machine - a.machine,
    bench: b.bench - a.bench,
  });
  const cores = (cpu: PhaseCpu, seconds: number) => ({
    server: cpu.replicas / seconds,
    machine: cpu.machine / seconds,
    other: Math.max(0, cpu.machine - cpu.replicas - cpu.stores - cpu.generators - cpu.bench) / seconds,
  });
  const closed = (durationMs: number): Load => ({
    kind: "closed",
    concurrency: plan.concurrency,
    durationMs,
  });

  const linesBefore = cluster.replicas.map((r) => r.lines.length);

  // The yardsticks: what the cluster serves of each kind of call when nothing else runs.
  const listWarmup = await runPhase(ctx, "list-factors", closed(plan.warmupMs));
  const listSaturation = await runPhase(ctx, "list-factors", closed(plan.saturationMs));
  log(
    `  overload: ListFactors saturation ${Math.round(listSaturation.throughput)}/s` +
      (listSaturation.refusals.shed > 0 ? ` (${listSaturation.refusals.shed} shed)` : ""),
  );
  // Under --quick, only when too few are left to fill the lanes.
  const flowUsersWanted = overload.waitForTotpStep
    ? (ctx.flowRateHint * (plan.warmupMs + plan.saturationMs)) / 1000 / workers.size
    : plan.concurrency;
  await waitForFlowUsers(workers, flowUsersWanted, log);
  const flowWarmup = await runPhase(ctx, "critical-flow", closed(plan.warmupMs));
  const flowSaturation = await runPhase(ctx, "critical-flow", closed(plan.saturationMs));
  log(`  overload: StepUp→Verify flow saturation ${Math.round(flowSaturation.throughput)}/s`);

  const floodPerSecond = listSaturation.throughput * overload.floodFactor;
  const criticalPerSecond = flowSaturation.throughput * overload.criticalFraction;
  const criticalUsers = (await critical.all<number>(() => ({ type: "flow-users" })))[0] ?? 0;
  // A user passes Verify once per 30 s TOTP step.
  const wanted = Math.ceil(criticalPerSecond * Math.min(30, (overload.baselineMs + overload.floodMs) / 1000));
  if (criticalUsers < wanted)
    log(`  overload: only ${criticalUsers} users for critical flows, ${wanted} wanted: some may not start`);
  const criticalOnly = { cluster, workers: critical };

  // Critical flows alone: their latency without the flood, and the replicas' memory without it.
  const peakReset = cluster.resetPeakMemory();
  const baseline = await runPhase(criticalOnly, "critical-flow", {
    kind: "open",
    ratePerSecond: criticalPerSecond,
    durationMs: overload.baselineMs,
  });
  baseline.load = { kind: "open", fraction: overload.criticalFraction, offeredPerSecond: criticalPerSecond };
  const unloaded = cluster.memory();
  log(
    `  overload: ${Math.round(floodPerSecond)}/s of ListFactors from ${floodCaller} for ${overload.floodMs / 1000} s, ` +
      `${criticalPerSecond.toFixed(1)}/s of critical flows`,
  );

  // The flood, the critical flows beside it, and the recovery right after. The flood's generators
  // run at a lower CPU priority meanwhile, as if the flood came from another machine: on shared
  // cores they would otherwise take the replicas' and stores' CPU (their use is still reported).
  setNice(workers.pids, floodNice);
  cluster.resetPeakMemory();
  const floodStart = await mark();
  const floodEnded = sleep(overload.floodMs).then(async () => {
    const memory = cluster.memory();
    return { memory, mark: await mark() };
  });
  const [floods, criticalSample] = await Promise.all([
    workers.all<FloodSample>(() => ({
      type: "flood",
      ratePerSecond: floodPerSecond / workers.size,
      durationMs: overload.floodMs,
      maxLagMs: overload.floodMaxLagMs,
      concurrency: plan.concurrency,
      recoveryMs: overload.recoveryMs,
      bucketMs: overload.bucketMs,
    })),
    critical.send<PhaseSample>(0, {
      type: "run",
      scenario: "critical-flow",
      load: { kind: "open", ratePerSecond: criticalPerSecond, durationMs: overload.floodMs },
    }),
  ]);
  setNice(workers.pids, 0);
  const atFloodEnd = await floodEnded;
  const end = await mark();
  const withRecovery = cluster.memory();

  const floodCpu = spent(floodStart, atFloodEnd.mark);
  const floodSeconds = (atFloodEnd.mark.at - floodStart.at) / 1000;
  const floodLoad: Load = {
    kind: "open",
    ratePerSecond: floodPerSecond / workers.size,
    durationMs: overload.floodMs,
  };
  const floodSamples = floods.map((f) => f.flood);
  const floodPhase = summarizePhase(floodLoad, floodSamples, workers.size, floodCpu);
  floodPhase.load = { kind: "open", fraction: overload.floodFactor, offeredPerSecond: floodPerSecond };
  floodPhase.cores = cores(floodCpu, floodSeconds);
  const sent = floodPhase.calls + floodPhase.failures;
  const lastSentMs = Math.max(...floodSamples.map((s) => s.launch?.lastMs ?? 0));
  const flood = {
    ...floodPhase,
    sent,
    sentPerSecond: sent / (Math.max(lastSentMs, overload.floodMs) / 1000),
    dropped: floodSamples.reduce((n, s) => n + (s.launch?.dropped ?? 0), 0),
    maxSendLagMs: Math.max(...floodSamples.map((s) => s.launch?.maxLagMs ?? 0)),
  };

  const criticalUnderFlood = summarizePhase(
    { kind: "open", ratePerSecond: criticalPerSecond, durationMs: overload.floodMs },
    [criticalSample],
    1,
    floodCpu,
  );
  criticalUnderFlood.load = {
    kind: "open",
    fraction: overload.criticalFraction,
    offeredPerSecond: criticalPerSecond,
  };
  criticalUnderFlood.cores = floodPhase.cores;

  const recoveryCpu = spent(atFloodEnd.mark, end);
  const recoveryPhase = summarizePhase(
    closed(overload.recoveryMs),
    floods.map((f) => f.recovery),
    workers.size,
    recoveryCpu,
  );
  const buckets = Math.floor(overload.recoveryMs / overload.bucketMs);
  const perSecond = Array.from(
    { length: buckets },
    (_, i) =>
      (floods.reduce((sum, f) => sum + (f.recovery.buckets?.successes[i] ?? 0), 0) * 1000) /
      overload.bucketMs,
  );
  const thresholdPerSecond = overload.recoveredAt * listSaturation.throughput;
  const recovery = {
    phase: recoveryPhase,
    thresholdPerSecond,
    bucketMs: overload.bucketMs,
    perSecond,
    recoveredAfterMs: recoveredAfter(perSecond, thresholdPerSecond, overload.bucketMs),
  };

  const replicasDown: OverloadResult["replicasDown"] = [];
  for (const r of cluster.replicas) {
    if (!r.running) replicasDown.push({ id: r.id, exit: String(await r.exited()) });
  }
  const replicaEvents: Record<string, number> = {};
  cluster.replicas.forEach((r, i) => {
    for (const line of r.lines.slice(linesBefore[i] ?? 0)) {
      const key = describeLogLine(line);
      replicaEvents[key] = (replicaEvents[key] ?? 0) + 1;
    }
  });
  const byId = (list: ReplicaMemory[], id: string) => list.find((m) => m.id === id)?.peakBytes ?? 0;
  const result: OverloadResult = {
    plan: overload,
    floodCaller,
    listFactors: { warmup: listWarmup, saturation: listSaturation },
    criticalFlows: { warmup: flowWarmup, saturation: flowSaturation },
    floodPerSecond,
    criticalPerSecond,
    baseline,
    criticalUnderFlood,
    flood,
    recovery,
    refusals: addRefusals(
      [
        listWarmup,
        listSaturation,
        flowWarmup,
        flowSaturation,
        baseline,
        criticalUnderFlood,
        flood,
        recoveryPhase,
      ].map((p) => p.refusals),
    ),
    memory: {
      peakReset,
      replicas: cluster.replicas.map((r) => ({
        id: r.id,
        unloadedPeakBytes: byId(unloaded, r.id),
        floodPeakBytes: byId(atFloodEnd.memory, r.id),
        withRecoveryPeakBytes: byId(withRecovery, r.id),
      })),
    },
    replicasDown,
    replicaEvents,
  };
  log(
    `  overload: flood ${Math.round(flood.sentPerSecond)}/s sent, ${flood.refusals.shed} shed; critical flows ` +
      `${criticalUnderFlood.calls} ok, ${criticalUnderFlood.failures} failed; recovery ` +
      (recovery.recoveredAfterMs === null ? "not seen" : `${recovery.recoveredAfterMs} ms`),
  );
  return result;
}

/**
 * The end of the first bucket (ms from the start) whose throughput reached `threshold` and whose
 * next second, itself included, averages at least `threshold`: one lucky bucket is not a recovery.
 */
export function recoveredAfter(perSecond: number[], threshold: number, bucketMs: number): number | null {
  if (!(threshold > 0)) return null;
  const window = Math.max(1, Math.round(1000 / bucketMs));
  for (let i = 0; i < perSecond.length; i++) {
    if ((perSecond[i] ?? 0) < threshold) continue;
    const next = perSecond.slice(i, i + window);
    // Too close to the end to tell.
    if (next.length < window) return null;
    if (next.reduce((a, b) => a + b, 0) / next.length >= threshold) return (i + 1) * bucketMs;
  }
  return null;
}

/**
 * Waits for the next TOTP step when a worker has fewer than `needed` users who may pass Verify now:
 * the scenarios before may have used them all in this 30 s step.
 */
async function waitForFlowUsers(workers: LoadWorkers, needed: number, log: (line: string) => void) {
  const ready = await workers.all<number>(() => ({ type: "flow-users" }));
  if (Math.min(...ready) >= needed) return;
  const waitMs = 30_000 - (Date.now() % 30_000) + 500;
  log(
    `  overload: ${ready.join("+")} users may pass Verify now, ${Math.ceil(needed)} wanted per worker: ` +
      `waiting ${(waitMs / 1000).toFixed(1)} s for the next TOTP step`,
  );
  await sleep(waitMs);
}

/** A replica's log line as `level: message (dependency up|down)`, for counting; other text as is. */
export function describeLogLine(line: string): string {
  try {
    const entry = JSON.parse(line) as { level?: unknown; msg?: unknown; dependency?: unknown; up?: unknown };
    const dependency =
      typeof entry.dependency === "string"
        ? ` (${entry.dependency}${typeof entry.up === "boolean" ? (entry.up ? " up" : " down") : ""})`
        : "";
    return `${String(entry.level)}: ${String(entry.msg)}${dependency}`;
  } catch {
    return line.slice(0, 80);
  }
}

/** The flood generators' niceness during the flood (0 is normal, 19 the lowest priority). */
const floodNice = 10;

/** Sets the processes' CPU priority; a process that already exited is skipped. */
function setNice(pids: readonly number[], nice: number) {
  for (const pid of pids) {
    try {
      setPriority(pid, nice);
    } catch {
      // Gone, or not ours to change: the figures say what the generators used either way.
    }
  }
}
