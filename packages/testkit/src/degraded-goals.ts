import { stepUpVerifySuccess } from "./degraded-figures.ts";
import type { ScenarioResult } from "./degraded-run.ts";

/** One goal of a degraded-mode scenario, and whether the run met it. */
export interface Goal {
  goal: string;
  held: boolean;
  /** The figure the verdict rests on. */
  figure: string;
}

/** The share of StepUp and Verify calls that must succeed where a goal asks for most of them, in %. */
export const successGoalPct = 99;

const share = (w: { calls: number; ok: number; pct: number }) => `${w.pct.toFixed(2)}% (${w.ok}/${w.calls})`;

/**
 * The goals a scenario's run must meet (docs/replicas-and-store-failures.md, "When a store fails"), with the figures they rest on.
 * Every scenario: no code accepted twice, no grant without a check, no subject locked out, and the
 * checks the fault made itself. Then per scenario:
 * - PostgreSQL down: at least 99% of StepUp and Verify calls started during the fault succeed;
 * - Redis down, Redis restarted empty, PostgreSQL or Redis blackholed: at least 99% of those started
 *   outside the detection windows (the first `detectionWindowMs` after the fault's start, and after
 *   its end, when the replicas notice the store is back and the hot state moves back: a challenge
 *   issued on Redis is not found on PostgreSQL after a move, docs/replicas-and-store-failures.md);
 * - one replica loses PostgreSQL: no flow fails;
 * - both down: every call that started once the fault was in place and ended before the repair
 *   began failed with UNAVAILABLE, and none was answered with a grant;
 * - a replica SIGKILLed during the PostgreSQL outage: every grant received has its audit event,
 *   none is stored twice.
 * Throws nothing.
 */
export function scenarioGoals(r: ScenarioResult): Goal[] {
  const { marks } = r.outcome;
  const goals: Goal[] = [
    {
      goal: "no code accepted twice",
      held: r.report.replays === 0,
      figure: `${r.report.replays} replays accepted`,
    },
    {
      goal: "no grant without a check",
      held: r.grantsWithoutCheck.count === 0,
      figure: `${r.grantsWithoutCheck.count} grants without a check`,
    },
    {
      goal: "no subject locked out",
      held: r.answeredLocked === 0 && r.failureRuns.locked === 0,
      figure: `${r.answeredLocked} answered SUBJECT_LOCKED, ${r.failureRuns.locked} past the limit`,
    },
  ];
  for (const [check, held] of Object.entries(r.outcome.checks))
    goals.push({ goal: check, held, figure: String(held) });
  const atLeast = (goal: string, w: { calls: number; ok: number; pct: number }, more = "") =>
    goals.push({ goal, held: w.calls > 0 && w.pct >= successGoalPct, figure: `${share(w)}${more}` });
  switch (r.scenario.name) {
    case "postgres-down":
      atLeast(
        `>= ${successGoalPct}% of StepUp and Verify calls started during the fault succeed`,
        stepUpVerifySuccess(r.calls, { fromMs: marks.startMs, toMs: marks.endMs }),
      );
      break;
    case "redis-down":
    case "redis-restarted-empty":
    case "postgres-blackholed":
    case "redis-blackholed":
      atLeast(
        `>= ${successGoalPct}% of StepUp and Verify calls succeed outside the first ${r.detectionWindowMs} ms ` +
          "after the fault's start and after its end",
        r.afterDetection.outsideWindows,
        `; with the window after the end: ${share(r.afterDetection.untilLoadEnd)}`,
      );
      break;
    case "one-replica-loses-postgres":
      goals.push({
        goal: "no flow fails",
        held: r.report.flowsFailed === 0 && r.report.unfinished === 0,
        figure: `${r.report.flowsFailed} flows failed, ${r.report.unfinished} unfinished of ${r.report.started}`,
      });
      break;
    case "both-down": {
      const inside = r.calls.filter((c) => c.startMs >= marks.appliedMs && c.endMs < marks.repairMs);
      const notUnavailable = inside.filter((c) => c.ok || !c.failure?.startsWith("UNAVAILABLE/"));
      const granted = r.calls.filter(
        (c) => c.grant !== undefined && c.endMs >= marks.appliedMs && c.endMs < marks.repairMs,
      );
      const kinds = [...new Set(notUnavailable.map((c) => `${c.rpc}:${c.failure ?? "OK"}`))].join(" ");
      goals.push(
        {
          goal: "every call during the outage fails with UNAVAILABLE",
          held: inside.length > 0 && notUnavailable.length === 0,
          figure: `${inside.length - notUnavailable.length}/${inside.length} UNAVAILABLE${kinds ? `; others: ${kinds}` : ""}`,
        },
        {
          goal: "no grant during the outage",
          held: granted.length === 0,
          figure: `${granted.length} grants`,
        },
      );
      break;
    }
    case "replica-killed-during-postgres-outage": {
      const a = r.audit;
      goals.push({
        goal: "no audit event lost or stored twice",
        held: a?.settled === true && a.missing === 0 && a.duplicates === 0,
        figure: a
          ? `expected ${a.expected}, found ${a.found}: ${a.missing} missing, ${a.extra} extra, ${a.duplicates} duplicate`
          : "not measured",
      });
      break;
    }
  }
  return goals;
}

/** The goals as `# ` lines: `#   goal ok|FAILED: <goal>: <figure>`. Throws nothing. */
export function formatGoals(goals: readonly Goal[]): string[] {
  return goals.map((g) => `#   goal ${g.held ? "ok" : "FAILED"}: ${g.goal}: ${g.figure}`);
}
