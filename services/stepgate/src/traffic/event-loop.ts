import { type EventLoopUtilization, performance } from "node:perf_hooks";

/** The event loop's recent load, sampled on a timer. */
export interface EventLoopWatch {
  /** The share of the last interval the loop was busy, 0 to 1. */
  utilization(): number;
  /** True while the last interval's utilization reached the saturation threshold. */
  saturated(): boolean;
  stop(): void;
}

export interface EventLoopWatchOptions {
  /** Sampling interval in ms (default 100). */
  intervalMs?: number;
  /** Utilization (0 to 1) from which the loop counts as saturated (default 0.95). */
  saturatedAt?: number;
  /** Told each sample's utilization, e.g. to back a concurrency limit off while saturated. */
  onSample?: (utilization: number, saturated: boolean) => void;
}

/**
 * Watches event-loop utilization (Node's `performance.eventLoopUtilization`): the share of time the
 * loop ran callbacks rather than waiting for I/O. Near 1, every call accepted only waits longer.
 */
export function watchEventLoop(options: EventLoopWatchOptions = {}): EventLoopWatch {
  const saturatedAt = options.saturatedAt ?? 0.95;
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  let utilization = 0;
  const timer = setInterval(() => {
    const now = performance.eventLoopUtilization();
    utilization = performance.eventLoopUtilization(now, last).utilization;
    last = now;
    options.onSample?.(utilization, utilization >= saturatedAt);
  }, options.intervalMs ?? 100);
  timer.unref();
  return {
    utilization: () => utilization,
    saturated: () => utilization >= saturatedAt,
    stop: () => clearInterval(timer),
  };
}
