import type { BenchCluster } from "../bench-cluster.ts";
import type { LoadWorkers } from "../load-workers.ts";
import { measureScenario, type PhasePlan, type PhaseResult } from "../measure-scenario.ts";
import type { ScenarioName } from "../worker-messages.ts";
import type { LatencyPhase, LatencyScenario } from "./latency-phase.ts";

/** A main-bench phase as a latency phase: the figures the latency and cost tables print. */
function toLatencyPhase(p: PhaseResult, fraction: number): LatencyPhase {
  return {
    kind: p.load.kind,
    fraction,
    offeredPerSecond: p.load.kind === "open" ? p.load.offeredPerSecond : p.throughput,
    throughput: p.throughput,
    calls: p.calls,
    failures: p.failures + p.unstarted,
    latency: p.latency,
    cpuMicrosPerCall: {
      server: p.cpuMicrosPerCall.server,
      stores: p.cpuMicrosPerCall.stores,
      generator: p.cpuMicrosPerCall.generators,
    },
    generatorLoopDelayMs: p.generatorLoopDelayMs,
    otherCores: p.cores.other,
  };
}

/**
 * A scenario whose every call differs (Verify: a fresh challenge, code and idempotency key; StepUp
 * with a new session) from the Node generators in `workers`, as the main bench drives it: closed-loop
 * saturation, then open loop at `plan.fractions`, latency from each call's scheduled start. Each
 * phase reports its generators' own event loop delay: when it nears the p99, the tail is theirs.
 */
export async function measureNode(
  cluster: BenchCluster,
  workers: LoadWorkers,
  scenario: ScenarioName,
  plan: PhasePlan,
  challengeRateHint: number,
  log: (line: string) => void,
): Promise<LatencyScenario> {
  const result = await measureScenario(scenario, {
    cluster,
    workers,
    plan,
    challengesForSaturation:
      (challengeRateHint * 1.5 * (plan.warmupMs + plan.saturationMs)) / 1000 / workers.size,
    log,
  });
  const notes: string[] = [];
  const ranDry = result.saturation.unstarted + result.rates.reduce((n, r) => n + r.unstarted, 0);
  if (ranDry > 0)
    notes.push(`${ranDry} calls not started for want of a prepared challenge (counted as failures)`);
  if (result.warmup.failures > 0) notes.push(`${result.warmup.failures} failures in the warm-up`);
  return {
    scenario,
    driver: "node",
    saturation: toLatencyPhase(result.saturation, 1),
    rates: result.rates.map((r, i) => toLatencyPhase(r, plan.fractions[i] ?? Number.NaN)),
    notes,
  };
}
