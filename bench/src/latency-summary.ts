/** Latency percentiles in ms over every worker's samples of one phase. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  p999: number;
  max: number;
}

export function summarizeLatency(samples: Float64Array[]): LatencySummary {
  const all = new Float64Array(samples.reduce((n, s) => n + s.length, 0));
  let offset = 0;
  for (const s of samples) {
    all.set(s, offset);
    offset += s.length;
  }
  all.sort();
  // Nearest rank: the smallest value with at least q of the samples at or below it.
  const at = (q: number) =>
    all.length === 0 ? Number.NaN : (all[Math.max(0, Math.ceil(q * all.length) - 1)] ?? Number.NaN);
  return { count: all.length, p50: at(0.5), p99: at(0.99), p999: at(0.999), max: at(1) };
}
