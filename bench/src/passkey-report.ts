import type { LatencyPhase, LatencyScenario } from "./latency/latency-phase.ts";
import { ms, table } from "./text-table.ts";

/** A measured row of `pnpm bench:passkey`: its label and what bench:latency's pieces measured. */
export interface PasskeyRow {
  label: string;
  measured: LatencyScenario;
}

const num = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const pair = (p: LatencyPhase | undefined) =>
  p === undefined ? "-" : `${ms(p.latency.p50)} ${ms(p.latency.p99)}`;
const failed = (s: LatencyScenario) => [s.saturation, ...s.rates].reduce((n, p) => n + p.failures, 0);
const otherCores = (s: LatencyScenario) => {
  const phases = [s.saturation, ...s.rates];
  return num(phases.reduce((n, p) => n + p.otherCores, 0) / phases.length, 2);
};

/**
 * The table: per row, successful calls and calls per second at saturation, the replica's (or bare
 * server's) CPU per call in µs and its multiple of `floorMicros` (the bare grpc-js handler's µs per
 * call, same run), the stores' µs per call, p50 and p99 in ms at each open-loop share of the row's
 * own saturation, the mean cores other work kept busy, and failures over every phase.
 */
export function formatPasskeyTable(rows: PasskeyRow[], floorMicros: number): string {
  const fractions =
    rows.find((r) => r.measured.rates.length > 0)?.measured.rates.map((r) => r.fraction) ?? [];
  return table([
    [
      "scenario",
      "driver",
      "calls",
      "sat/s",
      "server µs/call",
      "x bare grpc-js",
      "stores µs/call",
      ...fractions.map((f) => `@${Math.round(f * 100)}%: p50 p99 ms`),
      "other cores",
      "failed",
    ],
    ...rows.map(({ label, measured: s }) => [
      label,
      s.driver,
      String(s.saturation.calls),
      num(s.saturation.throughput),
      num(s.saturation.cpuMicrosPerCall.server),
      `${num(s.saturation.cpuMicrosPerCall.server / floorMicros, 2)}x`,
      num(s.saturation.cpuMicrosPerCall.stores),
      ...fractions.map((_, i) => pair(s.rates[i])),
      otherCores(s),
      String(failed(s)),
    ]),
  ]);
}

/** The Node generators' worst event loop delay p99 (ms beyond the 1 ms tick) per open-loop phase. */
export function generatorDelays(s: LatencyScenario): string {
  return s.rates.map((r) => ms(r.generatorLoopDelayMs?.p99 ?? Number.NaN)).join("/");
}
