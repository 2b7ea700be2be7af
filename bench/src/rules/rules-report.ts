import type { LatencyPhase } from "../latency/latency-phase.ts";
import { table } from "../text-table.ts";
import type { RuleEvaluation } from "./rule-evaluation.ts";
import type { RuleScenario } from "./rule-policies.ts";
import type { RulePath } from "./rule-requests.ts";

/** The goal: five rules cost StepUp at most this much more server CPU than none, in %. */
export const goalPercent = 5;

/** One measured server's saturation phases over the rounds; the one with the least server CPU counts. */
export interface RuleFigures {
  scenario: RuleScenario | "bare grpc-js handler";
  path?: RulePath;
  phases: LatencyPhase[];
}

const serverMicros = (p: LatencyPhase) => p.cpuMicrosPerCall.server;

/** The round with the least server CPU per call: a shared machine only ever adds. */
export function bestPhase(figures: RuleFigures): LatencyPhase {
  return figures.phases.reduce((best, p) => (serverMicros(p) < serverMicros(best) ? p : best));
}

const percentAbove = (a: number, b: number) => ((a - b) / b) * 100;
const signed = (n: number) => `${n >= 0 ? "+" : ""}${n.toFixed(1)}%`;

/**
 * The table: per scenario and StepUp answer, calls/s, server CPU µs per call (best round, and the
 * rounds' range), the stores' µs, the multiple of the bare grpc-js handler and the change against
 * no rules on the same answer.
 */
export function formatRulesTable(all: RuleFigures[]): string {
  const bare = all.find((f) => f.path === undefined);
  const bareMicros = bare ? serverMicros(bestPhase(bare)) : Number.NaN;
  const rows = all.map((f) => {
    const best = bestPhase(f);
    const none = all.find((n) => n.scenario === "no rules" && n.path === f.path && f.path !== undefined);
    const range = f.phases.map(serverMicros);
    return [
      f.scenario,
      f.path ?? "-",
      Math.round(best.throughput).toLocaleString("en-US"),
      serverMicros(best).toFixed(0),
      `${Math.min(...range).toFixed(0)}-${Math.max(...range).toFixed(0)}`,
      best.cpuMicrosPerCall.stores.toFixed(0),
      `${(serverMicros(best) / bareMicros).toFixed(2)}x`,
      none && none !== f ? signed(percentAbove(serverMicros(best), serverMicros(bestPhase(none)))) : "-",
    ];
  });
  return table([
    [
      "scenario",
      "StepUp answer",
      "calls/s",
      "server µs/call",
      "rounds",
      "stores µs",
      "x bare grpc-js",
      "vs no rules",
    ],
    ...rows,
  ]);
}

/** Per StepUp answer: whether `scenario` stays within the goal against no rules. */
export function formatGoal(all: RuleFigures[], scenario: RuleScenario): string {
  const parts = all
    .filter((f) => f.scenario === scenario && f.path !== undefined)
    .map((f) => {
      const none = all.find((n) => n.scenario === "no rules" && n.path === f.path);
      const delta = none
        ? percentAbove(serverMicros(bestPhase(f)), serverMicros(bestPhase(none)))
        : Number.NaN;
      return `${f.path} ${signed(delta)} ${delta <= goalPercent ? "met" : "NOT met"}`;
    });
  return `goal (${scenario} at most ${goalPercent}% above no rules): ${parts.join("; ")}`;
}

/** The in-process figures: µs per chooseRequirement for each policy. */
export function formatEvaluationTable(evaluations: RuleEvaluation[], rounds: number): string {
  return table([
    ["policy", "rules evaluated", `chooseRequirement µs (best of ${rounds})`],
    ...evaluations.map((e) => [e.scenario, String(e.rules), e.micros.toFixed(2)]),
  ]);
}
