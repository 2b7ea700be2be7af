import { monitorEventLoopDelay } from "node:perf_hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import type { PhaseSample } from "./worker-messages.ts";

/** Collects one phase's latencies and failures in a worker. */
export interface PhaseRecorder {
  success(latencyMs: number, serviceLatencyMs: number): void;
  failure(error: unknown): void;
  unstarted(): void;
  sample(elapsedMs: number): PhaseSample;
}

export function createPhaseRecorder(): PhaseRecorder {
  // The generator's own stalls (GC, a busy event loop) would show up as server latency: measure them.
  const loopDelay = monitorEventLoopDelay({ resolution: 5 });
  loopDelay.enable();
  let latencies = new Float64Array(4096);
  let service = new Float64Array(4096);
  let n = 0;
  let failures = 0;
  let unstarted = 0;
  const errors: Record<string, number> = {};
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
    },
    failure(error) {
      failures++;
      const key = describeFailure(error);
      errors[key] = (errors[key] ?? 0) + 1;
    },
    unstarted() {
      unstarted++;
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
        loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
      };
    },
  };
}

/** `CODE:REASON` for a gRPC error (the ErrorInfo reason where there is one), else the message. */
export function describeFailure(error: unknown): string {
  if (error instanceof ConnectError) {
    const reason = error.findDetails(ErrorInfoSchema)[0]?.reason ?? error.rawMessage.slice(0, 60);
    return `${Code[error.code] ?? error.code}:${reason}`;
  }
  return error instanceof Error ? error.message.slice(0, 80) : String(error);
}
