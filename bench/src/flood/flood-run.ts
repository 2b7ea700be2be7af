import { setTimeout as sleep } from "node:timers/promises";
import { type BenchCluster, cpuUsed } from "../bench-cluster.ts";
import type { LoadWorkers } from "../load-workers.ts";
import { type PhaseResult, runPhase } from "../measure-scenario.ts";
import type { Flood, FloodTotals } from "./floods.ts";
import { runFlood } from "./floods.ts";

/** Critical flows over one phase: what share succeeded and how fast, from each flow's scheduled start. */
export interface CriticalFigures {
  offered: number;
  succeeded: number;
  /** Succeeded over offered (flows not started for want of a user count as failed). */
  successRate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  errors: Record<string, number>;
}

/** One flood beside critical flows, after the same flows alone. */
export interface FloodPoint {
  flood: string;
  replicas: number;
  baseline: CriticalFigures;
  underFlood: CriticalFigures;
  totals: FloodTotals;
  /** The replicas' CPU over the flood, in cores. */
  replicaCores: number;
  /** p99 under the flood over p99 without it. */
  p99Ratio: number;
}

export function criticalFigures(phase: PhaseResult): CriticalFigures {
  const offered = phase.calls + phase.failures + phase.unstarted;
  return {
    offered,
    succeeded: phase.calls,
    successRate: offered > 0 ? phase.calls / offered : Number.NaN,
    p50Ms: phase.latency.p50,
    p99Ms: phase.latency.p99,
    maxMs: phase.latency.max,
    errors: phase.errors,
  };
}

/** Where the flood runs and who sends the critical flows. */
export interface FloodRunContext {
  cluster: BenchCluster;
  /** One generator process of its own, its users free for StepUp -> Verify. */
  critical: LoadWorkers;
  criticalPerSecond: number;
  cpuList: string;
}

/**
 * Critical flows alone for `baselineSeconds`, then `flood` for `floodSeconds` with the same flows
 * beside it from half a second in (the flood's connections are up) to a second before its end.
 */
export async function measureFloodPoint(
  ctx: FloodRunContext,
  flood: Flood,
  baselineSeconds: number,
  floodSeconds: number,
): Promise<FloodPoint> {
  const flows = (seconds: number) =>
    runPhase({ cluster: ctx.cluster, workers: ctx.critical }, "critical-flow", {
      kind: "open",
      ratePerSecond: ctx.criticalPerSecond,
      durationMs: seconds * 1000,
    });
  const baseline = criticalFigures(await flows(baselineSeconds));
  const before = await ctx.cluster.cpu();
  const [totals, under] = await Promise.all([
    runFlood(flood, floodSeconds, ctx.cpuList),
    sleep(500).then(() => flows(Math.max(1, floodSeconds - 1.5))),
  ]);
  const used = cpuUsed(before, await ctx.cluster.cpu());
  const underFlood = criticalFigures(under);
  // The replicas drain what the flood left in flight before the next point.
  await sleep(1000);
  return {
    flood: flood.name,
    replicas: ctx.cluster.replicas.length,
    baseline,
    underFlood,
    totals,
    replicaCores: used.replicas / totals.seconds,
    p99Ratio: underFlood.p99Ms / baseline.p99Ms,
  };
}
