import type { LatencySummary } from "../latency-summary.ts";

/** One phase of the latency or cost runs, however it was driven (h2load or Node generators). */
export interface LatencyPhase {
  /** Closed loop (saturation) or open loop at a share of the saturation throughput. */
  kind: "closed" | "open";
  /** Open loop: the share of saturation offered (0.25 ...); closed: 1. */
  fraction: number;
  /** Open loop: calls per second offered; closed: the throughput reached. */
  offeredPerSecond: number;
  /** Successful calls per second over the phase. */
  throughput: number;
  /** Successful calls. */
  calls: number;
  /** Calls that did not succeed: non-2xx, failed streams, answers without a body (h2load), or
   * gRPC errors (Node generators). */
  failures: number;
  /** p50, p99, p99.9 and max in ms: h2load from each request's send; Node generators (open loop)
   * from each call's scheduled start. */
  latency: LatencySummary;
  /** CPU per successful call, µs: the replicas measured, the stores (PostgreSQL, Redis), the generator. */
  cpuMicrosPerCall: { server: number; stores: number; generator: number };
  /** Node generators only: the worst generator's event loop delay in ms beyond its 1 ms tick. */
  generatorLoopDelayMs?: { p99: number; max: number };
  /** Cores busy with work neither this run nor the stores account for (`/proc/stat`): another
   * workload on the machine. Well above 0, every figure of the phase suffers, latency most. */
  otherCores: number;
  /** h2load, open loop only: how late it sent requests against an even schedule, in ms (`sendLag`). */
  sendLagMs?: { p99: number; max: number };
}

/** A scenario's saturation and its open-loop phases. */
export interface LatencyScenario {
  scenario: string;
  /** `h2load` (the same request repeated) or `node` (a generator of ours: Verify, StepUp). */
  driver: "h2load" | "node";
  saturation: LatencyPhase;
  rates: LatencyPhase[];
  /** h2load: the command line of each phase (the body file's temporary path aside), to rerun by hand. */
  commands?: string[];
  /** Anything the reader must know about this scenario's figures (e.g. answers without a body). */
  notes: string[];
}
