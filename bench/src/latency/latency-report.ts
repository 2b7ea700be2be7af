import { ms, table } from "../text-table.ts";
import type { CostPoint } from "./cost-part.ts";
import type { LatencyPhase, LatencyScenario } from "./latency-phase.ts";
import type { ChartPanel, ChartSeries } from "./svg-chart.ts";

const num = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const triple = (p: LatencyPhase | undefined) =>
  p === undefined ? "-" : `${ms(p.latency.p50)} ${ms(p.latency.p99)} ${ms(p.latency.p999)}`;
const loopDelay = (s: LatencyScenario) =>
  s.driver === "h2load"
    ? `lag ${s.rates.map((r) => ms(r.sendLagMs?.p99 ?? Number.NaN)).join(" ")}`
    : s.rates.map((r) => ms(r.generatorLoopDelayMs?.p99 ?? Number.NaN)).join(" ");
/** Mean cores other processes kept busy over the scenario's phases. */
const other = (s: LatencyScenario) => {
  const phases = [s.saturation, ...s.rates];
  return num(phases.reduce((n, p) => n + p.otherCores, 0) / phases.length, 2);
};
const failed = (s: LatencyScenario) => [s.saturation, ...s.rates].reduce((n, p) => n + p.failures, 0);

/**
 * Part 1: per scenario, saturation, CPU per call and its multiple of the bare grpc-js handler's
 * (measured in the same run), calls per second per core of replica CPU, p50 p99 p99.9 at each
 * share, generator delay.
 */
export function formatLatencyTable(scenarios: LatencyScenario[]): string {
  const fractions = scenarios[0]?.rates.map((r) => r.fraction) ?? [];
  const floor = scenarios.find((s) => s.scenario === "bare-grpc-js")?.saturation.cpuMicrosPerCall.server;
  const times = (s: LatencyScenario) =>
    floor === undefined ? "-" : `${num(s.saturation.cpuMicrosPerCall.server / floor, 2)}x`;
  const perCore = (s: LatencyScenario) => num(1e6 / s.saturation.cpuMicrosPerCall.server);
  const rows = [
    [
      "scenario",
      "driver",
      "sat/s",
      "server µs/call",
      "x bare grpc-js",
      "calls/s per core",
      ...fractions.map((f) => `@${Math.round(f * 100)}%: p50 p99 p99.9 ms`),
      "generator p99 ms @25/50/75",
      "other cores",
      "failed",
    ],
    ...scenarios.map((s) => [
      s.scenario,
      s.driver,
      num(s.saturation.throughput),
      num(s.saturation.cpuMicrosPerCall.server),
      times(s),
      perCore(s),
      ...fractions.map((_, i) => triple(s.rates[i])),
      loopDelay(s),
      other(s),
      String(failed(s)),
    ]),
  ];
  const p99s = (s: LatencyScenario | undefined) =>
    s?.rates.map((r) => `${ms(r.latency.p99)} ms @${Math.round(r.fraction * 100)}%`).join(", ");
  const noop = scenarios.find((s) => s.scenario === "noop");
  const bare = scenarios.find((s) => s.scenario === "bare-http2");
  const floors = noop
    ? [
        `no-op p99 floor (h2load): ${p99s(noop)}`,
        ...(bare ? [`bare HTTP/2 server at the same rates (the machine's floor): ${p99s(bare)}`] : []),
      ]
    : ["no-op floor: not measured (no h2load, or noop not selected)"];
  const notes = scenarios.flatMap((s) => s.notes.map((n) => `  ${s.scenario}: ${n}`));
  const multiple =
    floor === undefined
      ? ["x bare grpc-js: not measured (no h2load, or noop not selected)"]
      : [
          `x bare grpc-js: server CPU per call over a bare grpc-js unary handler's (${num(floor)} µs), same run`,
        ];
  return [table(rows), ...floors, ...multiple, ...notes].join("\n");
}

/** Part 5: StepUp and Verify CPU per call (saturation) and p99 per population and replica count. */
export function formatCostTable(points: CostPoint[]): string {
  const p99s = (s: LatencyScenario) => s.rates.map((r) => ms(r.latency.p99)).join(" ");
  const rows = [
    [
      "users",
      "replicas",
      "StepUp sat/s",
      "µs/call server",
      "stores",
      "p99 ms @25/50/75",
      "Verify sat/s",
      "µs/call server",
      "stores",
      "p99 ms @25/50/75",
      "gen loop delay p99 max ms",
      "other cores",
      "failed",
    ],
    ...points.map((p) => [
      p.users.toLocaleString("en-US"),
      String(p.replicas),
      num(p.stepUp.saturation.throughput),
      num(p.stepUp.saturation.cpuMicrosPerCall.server),
      num(p.stepUp.saturation.cpuMicrosPerCall.stores),
      p99s(p.stepUp),
      num(p.verify.saturation.throughput),
      num(p.verify.saturation.cpuMicrosPerCall.server),
      num(p.verify.saturation.cpuMicrosPerCall.stores),
      p99s(p.verify),
      ms(
        Math.max(
          ...[p.stepUp, p.verify].flatMap((s) => s.rates.map((r) => r.generatorLoopDelayMs?.p99 ?? 0)),
        ),
      ),
      `${other(p.stepUp)} ${other(p.verify)}`,
      String(failed(p.stepUp) + failed(p.verify)),
    ]),
  ];
  const seeded = [...new Map(points.map((p) => [p.users, p.seeding])).values()].map(
    (s) =>
      `  ${s.users.toLocaleString("en-US")} users (${s.known.toLocaleString("en-US")} known) seeded in ${s.seconds.toFixed(1)} s ` +
      `(${Math.round(s.rowsPerSecond).toLocaleString("en-US")} rows/s), vacuum analyze ${s.analyzeSeconds.toFixed(1)} s`,
  );
  const notes = points.flatMap((p) =>
    [p.stepUp, p.verify].flatMap((s) =>
      s.notes.map((n) => `  ${p.users} users, ${p.replicas} replicas, ${s.scenario}: ${n}`),
    ),
  );
  return [table(rows), "seeding:", ...seeded, ...notes].join("\n");
}

/** One row per phase: the plot-ready figures. */
export interface PlotPoint {
  scenario: string;
  users: number;
  replicas: number;
  kind: "closed" | "open";
  fraction: number;
  offeredPerSecond: number;
  throughput: number;
  serverMicrosPerCall: number;
  storesMicrosPerCall: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
}

export function plotPoints(points: CostPoint[]): PlotPoint[] {
  return points.flatMap((p) =>
    [p.stepUp, p.verify].flatMap((s) =>
      [s.saturation, ...s.rates].map((phase) => ({
        scenario: s.scenario === "stepup-challenge" ? "StepUp" : "Verify",
        users: p.users,
        replicas: p.replicas,
        kind: phase.kind,
        fraction: phase.fraction,
        offeredPerSecond: phase.offeredPerSecond,
        throughput: phase.throughput,
        serverMicrosPerCall: phase.cpuMicrosPerCall.server,
        storesMicrosPerCall: phase.cpuMicrosPerCall.stores,
        p50Ms: phase.latency.p50,
        p99Ms: phase.latency.p99,
        p999Ms: phase.latency.p999,
      })),
    ),
  );
}

const palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
const dashes = ["", "6 3", "2 3", "8 3 2 3"];

/**
 * Four panels: server CPU per call and p99 against offered load, for StepUp and for Verify; a line
 * per population (colour) and replica count (dash), the same in every panel. Open-loop phases only.
 */
export function costPanels(plot: PlotPoint[]): ChartPanel[] {
  const populations = [...new Set(plot.map((p) => p.users))];
  const replicaCounts = [...new Set(plot.map((p) => p.replicas))];
  const series = (scenario: string, y: (p: PlotPoint) => number): ChartSeries[] =>
    populations.flatMap((users, u) =>
      replicaCounts.map((replicas, r) => {
        const dash = dashes[r % dashes.length];
        return {
          label: `${users.toLocaleString("en-US")} users, ${replicas} replica${replicas === 1 ? "" : "s"}`,
          color: palette[u % palette.length] ?? "#000",
          ...(dash ? { dash } : {}),
          points: plot
            .filter(
              (p) =>
                p.scenario === scenario && p.users === users && p.replicas === replicas && p.kind === "open",
            )
            .map((p) => ({ x: p.offeredPerSecond, y: y(p) })),
        };
      }),
    );
  const x = "offered load (calls/s)";
  return ["StepUp", "Verify"].flatMap((scenario) => [
    {
      title: `${scenario}: server CPU per call`,
      xLabel: x,
      yLabel: "µs of replica CPU per call",
      series: series(scenario, (p) => p.serverMicrosPerCall),
    },
    {
      title: `${scenario}: p99 latency`,
      xLabel: x,
      yLabel: "p99 (ms, from the scheduled start)",
      series: series(scenario, (p) => p.p99Ms),
    },
  ]);
}
