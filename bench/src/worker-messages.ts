import type { BenchUser } from "./seed-users.ts";

/** The gRPC scenarios a load worker can drive, in the order a run measures them. */
export const scenarioNames = ["noop", "stepup-elevated", "checkgrant", "stepup-challenge", "verify"] as const;
export type ScenarioName = (typeof scenarioNames)[number];

/** What `--scenarios` may name: the gRPC scenarios, and the overload scenario (overload.ts) after them. */
export const benchScenarioNames = [...scenarioNames, "overload"] as const;
export type BenchScenarioName = (typeof benchScenarioNames)[number];

/**
 * The calls a worker can drive: every scenario's, and those of the overload scenario:
 * `list-factors` (FactorService/ListFactors, priority low, from the flood's own caller name, no
 * retries) and `critical-flow` (StepUp for payments.transfer, priority critical, then Verify with a
 * valid TOTP code, timed as one).
 */
export type CallName = ScenarioName | "list-factors" | "critical-flow";

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
  | { type: "run"; scenario: CallName; load: Load }
  /**
   * The overload scenario's flood: `list-factors` open loop at `ratePerSecond` for `durationMs`,
   * dropping calls it comes to more than `maxLagMs` late; the moment its schedule ends (calls still
   * in flight are left to finish), a closed loop of `list-factors` with `concurrency` lanes for
   * `recoveryMs`, counting successes per `bucketMs`.
   */
  | {
      type: "flood";
      ratePerSecond: number;
      durationMs: number;
      maxLagMs: number;
      concurrency: number;
      recoveryMs: number;
      bucketMs: number;
    }
  /** How many of the worker's users may run a critical flow now (their TOTP step is free). */
  | { type: "flow-users" }
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
  /** The generator's event loop delay over the phase in ms beyond the
   * monitor's 1 ms tick (perf_hooks): its own stalls (GC, waiting for a core). */
  loopDelayMs: { p99: number; max: number };
  /** Calls refused by traffic shaping, and whether each carried what a client needs to back off. */
  refusals: Refusals;
  /** Refused calls (in `refusals`): how long until the refusal came, timed as the successes are. */
  refusalLatenciesMs: Float64Array;
  /** Open loop: how late the latest call left after its scheduled start, when the last call left
   * (ms from the phase's start), and the calls dropped for coming too late (`maxLagMs`). A generator
   * that cannot keep up sends late, in bursts. */
  launch?: { maxLagMs: number; lastMs: number; dropped: number };
  /** Closed loop with buckets: successful calls per bucket of `bucketMs` from the phase's start. */
  buckets?: { bucketMs: number; successes: number[] };
}

/**
 * Calls refused by traffic shaping: shed by a replica's admission control (UNAVAILABLE, ErrorInfo
 * reason OVERLOADED) and refused by a fleet-wide rate limit (RESOURCE_EXHAUSTED, RATE_LIMITED),
 * with how many carried a RetryInfo detail, and (shed) the `grpc-retry-pushback-ms` trailer.
 */
export interface Refusals {
  shed: number;
  shedWithRetryInfo: number;
  shedWithPushback: number;
  limited: number;
  limitedWithRetryInfo: number;
}

/** The result of a `flood` command. */
export interface FloodSample {
  flood: PhaseSample;
  recovery: PhaseSample;
}

export type WorkerReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

/**
 * Answers the parent's `{ id, command }` messages with `handle`'s result or error, as a
 * `WorkerReply` with the same id; after the reply to a `close` command the process exits (open gRPC
 * channels and timers would keep it alive).
 */
export function serveWorkerCommands<C extends { type: string }>(
  handle: (command: C) => Promise<unknown>,
): void {
  process.on("message", (message: { id: number; command: C }) => {
    handle(message.command).then(
      (value) =>
        process.send?.({ id: message.id, ok: true, value } satisfies WorkerReply, () => {
          if (message.command.type === "close") process.exit(0);
        }),
      (error: unknown) =>
        process.send?.({
          id: message.id,
          ok: false,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        } satisfies WorkerReply),
    );
  });
}
