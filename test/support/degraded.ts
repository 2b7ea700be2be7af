import assert from "node:assert/strict";
import { formatGoals, type Goal, scenarioGoals } from "@stepgate/testkit/degraded-goals";
import type { DegradedLab } from "@stepgate/testkit/degraded-lab";
import { formatScenarioResult } from "@stepgate/testkit/degraded-report";
import { runScenario, type ScenarioResult } from "@stepgate/testkit/degraded-run";
import { type ScenarioName, scenarios } from "@stepgate/testkit/degraded-scenarios";
import type { FlowSubject } from "@stepgate/testkit/seed-subjects";

/**
 * The short runs of `pnpm test`: 15 flows/s, 1.5 s of load before a fault of 5 s and 2.5 s after
 * (`pnpm chaos` runs the same scenarios with 30 s faults). Times in ms.
 */
export const shortRun = { ratePerSecond: 15, preMs: 1500, faultMs: 5000, postMs: 2500 } as const;

/** Subjects for a lab that runs four short scenarios (about 40 s of load): a subject verifies at most
 * once per 30 s step, so `ratePerSecond * 30`, and some more. */
export const subjectsForFourRuns = Math.ceil(shortRun.ratePerSecond * 30 * 1.15) + 10;

/**
 * Runs `name` on `lab` as `shortRun` says (with the audit comparison when `audit`), prints its table
 * and goals as `# ` lines, and returns them. Rejects with the fault's error.
 */
export async function runShort(
  lab: DegradedLab,
  subjects: FlowSubject[],
  name: ScenarioName,
  audit = false,
): Promise<{ result: ScenarioResult; goals: Goal[] }> {
  const result = await runScenario(lab, scenarios[name], { subjects, ...shortRun, audit });
  const goals = scenarioGoals(result);
  process.stdout.write(`${[...formatScenarioResult(result), ...formatGoals(goals)].join("\n")}\n`);
  return { result, goals };
}

/** Asserts every goal, each failure naming the goal and its figure. */
export function assertGoals(goals: readonly Goal[]): void {
  for (const g of goals) assert.ok(g.held, `${g.goal}: ${g.figure}`);
}
