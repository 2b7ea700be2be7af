/** Bounds and tuning of a gradient concurrency limit. */
export interface GradientLimitOptions {
  /** The limit before any latency was seen (calls in flight). */
  initial: number;
  /** The limit never falls below this. */
  min: number;
  /** The limit never rises above this. */
  max: number;
  /** How much slower than the long-term latency a window may be before the limit falls (ratio, > 1). */
  tolerance?: number;
  /** Weight of each new estimate (0 to 1). */
  smoothing?: number;
  /** Windows the long-term latency averages over (an exponential average). */
  longWindows?: number;
}

/** A concurrency limit that adapts to the latency it observes. */
export interface ConcurrencyLimit {
  /** Calls allowed in flight now (at least `min`). */
  readonly limit: number;
  /**
   * Takes one window's average latency (ms, work only, no queueing) and the most calls that were in
   * flight during it.
   */
  update(averageLatencyMs: number, maxInFlight: number): void;
  /** Overload seen outside latency (a saturated event loop): the limit falls by 10%. */
  backOff(): void;
}

/**
 * Netflix's Gradient2 limit (concurrency-limits, Gradient2Limit): compares each window's latency
 * with a long-term exponential average. While they agree the limit grows by about sqrt(limit); when
 * a window is slower than `tolerance` times the average, it shrinks in proportion (at most by half
 * per window). It does not grow while fewer than half of its slots are used (the replica is not the
 * bottleneck then), and the long average is pulled down quickly after an overload ends.
 */
export function createGradientLimit(options: GradientLimitOptions): ConcurrencyLimit {
  const tolerance = options.tolerance ?? 1.5;
  const smoothing = options.smoothing ?? 0.2;
  const longWindows = options.longWindows ?? 100;
  const clamp = (n: number) => Math.max(options.min, Math.min(options.max, n));
  let estimate = clamp(options.initial);
  let longLatency = 0;
  let seen = 0;
  return {
    get limit() {
      return Math.max(options.min, Math.floor(estimate));
    },
    update(averageLatencyMs, maxInFlight) {
      if (!(averageLatencyMs > 0)) return;
      seen += 1;
      // A plain average while warming up, then exponential over `longWindows`.
      const weight = seen <= 10 ? 1 / seen : 2 / (longWindows + 1);
      longLatency = longLatency + (averageLatencyMs - longLatency) * weight;
      // Latency back to normal after a long overload: do not wait for the average to forget it.
      if (longLatency / averageLatencyMs > 2) longLatency *= 0.95;
      if (maxInFlight < estimate / 2) return;
      const gradient = Math.max(0.5, Math.min(1, (tolerance * longLatency) / averageLatencyMs));
      const next = estimate * gradient + Math.sqrt(estimate);
      estimate = clamp(estimate * (1 - smoothing) + next * smoothing);
    },
    backOff() {
      estimate = clamp(estimate * 0.9);
    },
  };
}
