import { monitorEventLoopDelay } from "node:perf_hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema, RetryInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import type { PhaseSample, Refusals } from "./worker-messages.ts";

/** The trailer a shed call carries (gRFC A6 retry pushback), as the server sets it. */
const pushbackTrailer = "grpc-retry-pushback-ms";

/** Collects one phase's latencies and failures in a worker. */
export interface PhaseRecorder {
  success(latencyMs: number, serviceLatencyMs: number): void;
  /** A failed call, and how long it took: from the scheduled start (open loop) or the send. */
  failure(error: unknown, latencyMs?: number): void;
  unstarted(): void;
  /** Open loop: a call left `lagMs` after its scheduled start, `atMs` after the phase's start. */
  launched(lagMs: number, atMs: number): void;
  /** Open loop: a call the generator came to too late, not sent. */
  dropped(): void;
  sample(elapsedMs: number): PhaseSample;
}

export interface PhaseRecorderOptions {
  /** Count successes per bucket of this many ms from the recorder's creation. */
  bucketMs?: number;
}

/** How often the event loop delay monitor ticks, in ms. */
const loopDelayResolutionMs = 1;
/** A tick interval in ns (as the histogram holds it) as the stall beyond the expected tick, in ms. */
const beyondTick = (ns: number) => (Number.isFinite(ns) ? Math.max(0, ns / 1e6 - loopDelayResolutionMs) : 0);

export function createPhaseRecorder(options: PhaseRecorderOptions = {}): PhaseRecorder {
  // The generator's own stalls (GC, a busy event loop) would show up as server latency: measure them.
  // Node records the whole interval between its timer's ticks, so the resolution comes off again.
  const loopDelay = monitorEventLoopDelay({ resolution: loopDelayResolutionMs });
  loopDelay.enable();
  const created = performance.now();
  let latencies = new Float64Array(4096);
  let service = new Float64Array(4096);
  let n = 0;
  let failures = 0;
  let unstarted = 0;
  let launch: { maxLagMs: number; lastMs: number; dropped: number } | undefined;
  const buckets: number[] = [];
  const refusalLatencies: number[] = [];
  const errors: Record<string, number> = {};
  const refusals: Refusals = {
    shed: 0,
    shedWithRetryInfo: 0,
    shedWithPushback: 0,
    limited: 0,
    limitedWithRetryInfo: 0,
  };
  return {
    success(latencyMs, serviceLatencyMs) {
      if (n === latencies.length) {
        const grow = (a: Float64Array) => {
          const b = new Float64Array(a.length * 2);
          b.set(a);
          return b;
        };
        latencies = grow(latencies);
        service = grow(service);
      }
      latencies[n] = latencyMs;
      service[n] = serviceLatencyMs;
      n++;
      if (options.bucketMs !== undefined) {
        const b = Math.floor((performance.now() - created) / options.bucketMs);
        while (buckets.length <= b) buckets.push(0);
        buckets[b] = (buckets[b] ?? 0) + 1;
      }
    },
    failure(error, latencyMs) {
      failures++;
      const key = describeFailure(error);
      errors[key] = (errors[key] ?? 0) + 1;
      if (countRefusal(refusals, error) && latencyMs !== undefined) refusalLatencies.push(latencyMs);
    },
    unstarted() {
      unstarted++;
    },
    launched(lagMs, atMs) {
      launch = {
        maxLagMs: Math.max(launch?.maxLagMs ?? 0, lagMs),
        lastMs: atMs,
        dropped: launch?.dropped ?? 0,
      };
    },
    dropped() {
      launch = {
        maxLagMs: launch?.maxLagMs ?? 0,
        lastMs: launch?.lastMs ?? 0,
        dropped: (launch?.dropped ?? 0) + 1,
      };
    },
    sample(elapsedMs) {
      loopDelay.disable();
      return {
        calls: n + failures,
        failures,
        errors,
        latenciesMs: latencies.slice(0, n),
        serviceLatenciesMs: service.slice(0, n),
        elapsedMs,
        unstarted,
        loopDelayMs: { p99: beyondTick(loopDelay.percentile(99)), max: beyondTick(loopDelay.max) },
        refusals,
        refusalLatenciesMs: Float64Array.from(refusalLatencies),
        ...(launch ? { launch } : {}),
        ...(options.bucketMs !== undefined
          ? {
              buckets: {
                bucketMs: options.bucketMs,
                // Up to the phase's end, empty buckets included.
                successes: Array.from(
                  { length: Math.ceil(elapsedMs / options.bucketMs) },
                  (_, i) => buckets[i] ?? 0,
                ),
              },
            }
          : {}),
      };
    },
  };
}

/** Counts `error` in `refusals` when traffic shaping refused the call (OVERLOADED, RATE_LIMITED);
 * true if it did. */
function countRefusal(refusals: Refusals, error: unknown): boolean {
  if (!(error instanceof ConnectError)) return false;
  const reason = error.findDetails(ErrorInfoSchema)[0]?.reason;
  const retryInfo = error.findDetails(RetryInfoSchema).length > 0;
  if (reason === "OVERLOADED") {
    refusals.shed++;
    if (retryInfo) refusals.shedWithRetryInfo++;
    if (error.metadata.has(pushbackTrailer)) refusals.shedWithPushback++;
  } else if (reason === "RATE_LIMITED") {
    refusals.limited++;
    if (retryInfo) refusals.limitedWithRetryInfo++;
  } else {
    return false;
  }
  return true;
}

/** Which call of a multi-call flow failed (set on the error by the flow), for `describeFailure`. */
export const failedStep = Symbol("failedStep");

/**
 * `CODE:REASON` for a gRPC error (the ErrorInfo reason where there is one, else the message up to
 * its first comma with numbers left out, so grpc-js's timings do not split one kind in many), else
 * the message; prefixed with the flow's step that failed, if any.
 */
export function describeFailure(error: unknown): string {
  const step = (error as { [failedStep]?: string } | undefined)?.[failedStep];
  const prefix = step === undefined ? "" : `${step} `;
  if (error instanceof ConnectError) {
    const info = error.findDetails(ErrorInfoSchema)[0];
    // A shed call says why: queue_full, deadline or overloaded (an event loop too busy to queue it).
    const cause = info?.metadata.cause === undefined ? "" : `(${info.metadata.cause})`;
    const reason =
      info?.reason ?? (error.rawMessage.split(",")[0] ?? "").replace(/\d+(\.\d+)?/g, "N").slice(0, 60);
    return `${prefix}${Code[error.code] ?? error.code}:${reason}${cause}`;
  }
  return prefix + (error instanceof Error ? error.message.slice(0, 80) : String(error));
}
