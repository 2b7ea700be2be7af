import { type LoadWorkers, startLoadWorkers } from "../load-workers.ts";
import type { BenchUser } from "../seed-users.ts";

/** The calling service every latency scenario names. */
export const caller = "payments";

/**
 * `count` load generators on `cpuList`, each given its share of `users` against `target`, then
 * run `warmupMs` of closed-loop Noop at `concurrency` calls in flight: their own gRPC path runs
 * cold for thousands of calls, as in the main bench. Close them with `workers.close()`; they are
 * closed already if this rejects.
 */
export async function startWarmWorkers(
  count: number,
  cpuList: string | undefined,
  target: string,
  users: BenchUser[],
  warmup: { concurrency: number; durationMs: number },
): Promise<LoadWorkers> {
  const workers = startLoadWorkers(count, cpuList);
  try {
    await workers.all((i) => ({
      type: "init",
      target,
      caller,
      users: users.filter((_, j) => j % workers.size === i),
      grantsToKeep: 0,
    }));
    await workers.all(() => ({ type: "run", scenario: "noop", load: { kind: "closed", ...warmup } }));
    return workers;
  } catch (error) {
    await workers.close();
    throw error;
  }
}
