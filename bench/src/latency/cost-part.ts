import type { BenchCluster } from "../bench-cluster.ts";
import type { BenchUser } from "../seed-users.ts";
import { clusterView } from "./cluster-view.ts";
import type { LatencyOptions } from "./latency-options.ts";
import type { LatencyScenario } from "./latency-phase.ts";
import { measureNode } from "./measure-node.ts";
import type { Seeding } from "./seed-population.ts";
import { startWarmWorkers } from "./warm-workers.ts";

/** Part 5: StepUp (a new challenge) and Verify on one population, through `replicas` replicas. */
export interface CostPoint {
  users: number;
  replicas: number;
  seeding: Seeding;
  stepUp: LatencyScenario;
  verify: LatencyScenario;
}

/**
 * StepUp and Verify through the first `replicas` replicas of `cluster`, from fresh Node generators
 * with `users` of their own (a user passes Verify once per 30 s step; no other run has used them).
 */
export async function measureCostPoint(
  cluster: BenchCluster,
  replicas: number,
  users: BenchUser[],
  seeding: Seeding,
  options: LatencyOptions,
  log: (line: string) => void,
): Promise<CostPoint> {
  const view = clusterView(cluster, replicas);
  const workers = await startWarmWorkers(options.costWorkers, options.cores.generators, view.target, users, {
    concurrency: options.plan.concurrency,
    durationMs: options.plan.initialWarmupMs * replicas,
  });
  try {
    const plan = { ...options.plan, warmupMs: options.plan.warmupMs * replicas };
    const stepUp = await measureNode(view, workers, "stepup-challenge", plan, 500, log);
    const verify = await measureNode(view, workers, "verify", plan, stepUp.saturation.throughput, log);
    return { users: seeding.users, replicas, seeding, stepUp, verify };
  } finally {
    await workers.close();
  }
}
