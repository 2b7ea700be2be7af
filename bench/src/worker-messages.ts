import type { BenchUser } from "./seed-users.ts";

/** The gRPC scenarios a load worker can drive, in the order a run measures them. */
export const scenarioNames = ["noop", "stepup-elevated", "checkgrant", "stepup-challenge", "verify"] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** Closed loop: `concurrency` calls always in flight, for saturation. Open loop: calls started on
 * a fixed schedule whatever the answers, so queueing shows in the latency instead of slowing the load. */
export type Load =
  | { kind: "closed"; concurrency: number; durationMs: number }
  | { kind: "open"; ratePerSecond: number; durationMs: number };

export type WorkerCommand =
  | { type: "init"; target: string; caller: string; users: BenchUser[]; grantsToKeep: number }
  /** Elevates `count` sessions (StepUp, then Verify) for stepup-elevated and checkgrant. */
  | { type: "prepare-sessions"; count: number }
  /** Creates challenges, one per user who may pass Verify now, until `count` are waiting. */
  | { type: "prepare-challenges"; count: number }
  | { type: "run"; scenario: ScenarioName; load: Load }
  /** The distinct grant tokens stepup-elevated collected. */
  | { type: "grants" }
  | { type: "offline"; tokens: string[]; rounds: number; cachedCalls: number }
  | { type: "close" };

/** What one worker saw in one phase. */
export interface PhaseSample {
  /** Calls that ended, failed or not. */
  calls: number;
  failures: number;
  /** Failures by gRPC code and ErrorInfo reason, or by unexpected outcome. */
  errors: Record<string, number>;
  /** Successful calls: from the scheduled start (open loop) or the send (closed loop), in ms. */
  latenciesMs: Float64Array;
  /** Successful calls from the moment they were sent, in ms (equal to the above in closed loop). */
  serviceLatenciesMs: Float64Array;
  /** From the phase's start to the last call's end. */
  elapsedMs: number;
  /** For want of prepared work (a challenge for Verify): in open loop the calls not started, in
   * closed loop the lanes that stopped before the end. */
  unstarted: number;
  /** The generator's event loop delay over the phase (perf_hooks, 5 ms resolution): its own stalls. */
  loopDelayMs: { p99: number; max: number };
}

export type WorkerRequest = { id: number; command: WorkerCommand };
export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };
