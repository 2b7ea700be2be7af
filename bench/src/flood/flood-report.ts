import type { ChartPanel } from "../latency/svg-chart.ts";
import { ms, table } from "../text-table.ts";
import type { CriticalFigures, FloodPoint } from "./flood-run.ts";

const pct = (n: number) => (Number.isFinite(n) ? `${(n * 100).toFixed(n === 1 ? 0 : 1)}%` : "-");
const per = (n: number) => Math.round(n).toLocaleString("en-US");
const flows = (c: CriticalFigures) => `${pct(c.successRate)} ${ms(c.p50Ms)} ${ms(c.p99Ms)}`;

/** One row per flood point: the flood's size and what it got, the critical flows without and with it. */
export function formatFloodTable(points: FloodPoint[]): string {
  const rows = [
    [
      "flood",
      "replicas",
      "streams",
      "answered/s",
      "served/s",
      "refused/s",
      "replica cores",
      "critical alone: ok p50 p99 ms",
      "under flood: ok p50 p99 ms",
      "p99 x",
    ],
    ...points.map((p) => [
      p.flood,
      String(p.replicas),
      String(p.totals.streams),
      per(p.totals.answeredPerSecond),
      per(p.totals.servedPerSecond),
      per(p.totals.refusedPerSecond),
      p.replicaCores.toFixed(2),
      flows(p.baseline),
      flows(p.underFlood),
      Number.isFinite(p.p99Ratio) ? p.p99Ratio.toFixed(1) : "-",
    ]),
  ];
  const errors = points.flatMap((p) =>
    Object.entries(p.underFlood.errors).map(
      ([e, n]) => `  ${p.flood}, ${p.replicas} replica(s), ${p.totals.streams} streams: ${n} x ${e}`,
    ),
  );
  return [
    table(rows),
    ...(errors.length > 0 ? ["critical flows that failed under a flood:", ...errors] : []),
  ].join("\n");
}

const colors = ["#1f77b4", "#d62728", "#2ca02c"];

/** Critical p99 and success against the flood's size (streams in flight), a line per replica count. */
export function sweepPanels(points: FloodPoint[]): ChartPanel[] {
  const sizes = [...new Set(points.map((p) => p.replicas))];
  const series = (y: (c: CriticalFigures) => number) =>
    sizes.map((replicas, i) => {
      const mine = points
        .filter((p) => p.replicas === replicas)
        .sort((a, b) => a.totals.streams - b.totals.streams);
      const alone = mine.map((p) => y(p.baseline)).sort((a, b) => a - b)[Math.floor(mine.length / 2)] ?? 0;
      return {
        label: `${replicas} replica${replicas === 1 ? "" : "s"} (at 0: no flood)`,
        color: colors[i % colors.length] ?? "#000",
        points: [{ x: 0, y: alone }, ...mine.map((p) => ({ x: p.totals.streams, y: y(p.underFlood) }))],
      };
    });
  const xLabel = "flood size (h2load streams in flight, one caller, ListFactors)";
  return [
    {
      title: "Critical StepUp→Verify p99",
      xLabel,
      yLabel: "p99 (ms, from the scheduled start)",
      series: series((c) => c.p99Ms),
    },
    {
      title: "Critical flows that succeeded",
      xLabel,
      yLabel: "% of flows offered",
      series: series((c) => c.successRate * 100),
    },
  ];
}
