import { setTimeout as sleep } from "node:timers/promises";
import { type AuditFigures, auditAfterRecovery } from "./degraded-audit.ts";
import {
  type CallFigures,
  callFigures,
  expectedFailureRuns,
  firstFailureAfter,
  grantsWithoutCheck,
  lastFailureAfter,
  receivedGrantIds,
  stepUpVerifySuccess,
  subjectsAnsweredLocked,
} from "./degraded-figures.ts";
import type { DegradedLab } from "./degraded-lab.ts";
import { type FailureRuns, failureRuns, readFailureCounts } from "./degraded-lockouts.ts";
import { loggedState, type ReplicaLogFigures, replicaLogFigures } from "./degraded-logs.ts";
import type { FaultOutcome, Scenario } from "./degraded-scenarios.ts";
import { type FlowCall, type FlowLoadReport, type FlowRpc, startFlowLoad } from "./flow-load.ts";
import type { FlowSubject } from "./seed-subjects.ts";

/** How `runScenario` runs a scenario; times are in ms. */
export interface RunScenarioOptions {
  /** Seeded subjects (`seedSubjects`) the load verifies with; about `ratePerSecond * 30` for a run
   * of 30 s or more. */
  subjects: FlowSubject[];
  /** Flows started per second (open loop). */
  ratePerSecond: number;
  /** Load before the fault. */
  preMs: number;
  /** How long the fault is held (at least: a step of it may take longer). */
  faultMs: number;
  /** Load after the fault ended. */
  postMs: number;
  /** Calls that start this long into the fault are "after detection". Default 2000. */
  detectionWindowMs?: number;
  /** Compare the grants received with the audit events stored after a drain. Default true. */
  audit?: boolean;
  /** How long flows still running after the load stops may take before they are cancelled. Default 10_000. */
  drainMs?: number;
  /** Told of each step (for a runner's progress lines). */
  onProgress?: (line: string) => void;
}

/** A scenario's figures. Times are in ms since the load started unless said otherwise. */
export interface ScenarioResult {
  scenario: Scenario;
  ratePerSecond: number;
  preMs: number;
  faultMs: number;
  postMs: number;
  detectionWindowMs: number;
  outcome: FaultOutcome;
  /** The load's own report (timeline, replicas, replays). */
  report: FlowLoadReport;
  /** Every call the report counts. */
  calls: FlowCall[];
  /** The load's start on the wall clock, epoch ms. */
  loadStartEpochMs: number;
  /** When the load stopped starting flows. */
  loadStopMs: number;
  /** Calls started in the fault window: from its start until its end or `faultMs` after its start,
   * whichever is later. */
  duringFault: Record<FlowRpc, CallFigures>;
  /** Every call of the run. */
  whole: Record<FlowRpc, CallFigures>;
  /**
   * StepUp and Verify calls started outside the detection windows, the first `detectionWindowMs`
   * after the fault's start and after its end (when the replicas notice the store went and came
   * back, and the hot state moves): from the fault's start + window until its end, and from its end
   * + window until the load stopped (`outsideWindows`); also from the start + window until the fault
   * ended (`untilFaultEnd`) and until the load stopped (`untilLoadEnd`, the end's window included).
   */
  afterDetection: { outsideWindows: Success; untilFaultEnd: Success; untilLoadEnd: Success };
  /** The first failed call that ended during the fault: when, in ms after the fault's start. */
  detectMs: number | undefined;
  /** After the fault's end (ms after it): the start of the first 250 ms with calls and no failure
   * (undefined when no call failed after the fault started), and the end of the last failed call. */
  recoverMs: number | undefined;
  lastFailureMs: number | undefined;
  audit: AuditFigures | undefined;
  grantsWithoutCheck: { count: number; examples: string[] };
  /** Subjects answered SUBJECT_LOCKED during the run. */
  answeredLocked: number;
  failureRuns: FailureRuns;
  /** Each replica's log lines of the run, times in ms after the fault started. */
  logs: ReplicaLogFigures[];
}

/** Calls and successes of a window, with the share in %. */
export interface Success {
  calls: number;
  ok: number;
  pct: number;
}

/** Two windows' calls together. */
function added(a: Success, b: Success): Success {
  const calls = a.calls + b.calls;
  const ok = a.ok + b.ok;
  return { calls, ok, pct: calls === 0 ? 100 : (ok / calls) * 100 };
}

/**
 * Runs `scenario` on `lab` under an open-loop flow load through `@stepgate/client` (a client of the
 * load's own over every replica): `preMs` of load, the fault, `postMs` of load after it, a drain of
 * the flows in flight; then, with the stores back, waits for the audit outbox to drain and compares
 * the grants received with the events stored (unless `audit` is false), reads the subjects' runs of
 * failures and the replicas' logs. Rejects with the fault's error (the lab is then in an unknown
 * state: destroy it) once the load has stopped.
 */
export async function runScenario(
  lab: DegradedLab,
  scenario: Scenario,
  options: RunScenarioOptions,
): Promise<ScenarioResult> {
  const { subjects, ratePerSecond, preMs, faultMs, postMs } = options;
  const detectionWindowMs = options.detectionWindowMs ?? 2000;
  const progress = options.onProgress ?? (() => {});
  await settled(lab);
  const names = subjects.map((s) => s.subject);
  const failuresBefore = await readFailureCounts(lab, names);
  const fromLines = lab.replicas.map((r) => r.process.lines.length);
  const calls: FlowCall[] = [];
  const loadStartEpochMs = Date.now();
  const load = startFlowLoad({
    client: lab.target,
    subjects,
    ratePerSecond,
    // Stopped by hand once the fault is over; this only bounds a run whose fault never returns.
    durationMs: preMs + faultMs + postMs + 120_000,
    drainMs: options.drainMs ?? 10_000,
    onCall: (c) => calls.push(c),
  });
  let outcome: FaultOutcome;
  try {
    await sleep(preMs);
    progress(`fault: ${scenario.how}`);
    outcome = await scenario.run(lab, load, faultMs);
    const left = outcome.marks.endMs + postMs - load.elapsedMs();
    if (left > 0) await sleep(left);
  } catch (error) {
    // Nothing runs on after a fault that failed: the caller destroys the lab.
    load.stop();
    await load.done;
    throw error;
  }
  load.stop();
  const loadStopMs = Math.round(load.elapsedMs());
  const report = await load.done;
  const { marks } = outcome;
  const faultWindow = { fromMs: marks.startMs, toMs: Math.max(marks.endMs, marks.startMs + faultMs) };
  const detectedFrom = marks.startMs + detectionWindowMs;
  let audit: AuditFigures | undefined;
  if (options.audit ?? true) {
    progress("waiting for the audit outbox to drain");
    audit = await auditAfterRecovery(lab, receivedGrantIds(calls), loadStartEpochMs);
  }
  const faultStartEpochMs = loadStartEpochMs + marks.startMs;
  return {
    scenario,
    ratePerSecond,
    preMs,
    faultMs,
    postMs,
    detectionWindowMs,
    outcome,
    report,
    calls,
    loadStartEpochMs,
    loadStopMs,
    duringFault: callFigures(calls, faultWindow),
    whole: callFigures(calls),
    afterDetection: {
      outsideWindows: added(
        stepUpVerifySuccess(calls, { fromMs: detectedFrom, toMs: marks.endMs }),
        stepUpVerifySuccess(calls, {
          fromMs: marks.endMs + detectionWindowMs,
          toMs: Number.POSITIVE_INFINITY,
        }),
      ),
      untilFaultEnd: stepUpVerifySuccess(calls, { fromMs: detectedFrom, toMs: marks.endMs }),
      untilLoadEnd: stepUpVerifySuccess(calls, { fromMs: detectedFrom, toMs: Number.POSITIVE_INFINITY }),
    },
    detectMs: firstFailureAfter(
      calls.filter((c) => c.endMs < marks.endMs),
      marks.startMs,
    ),
    // Nothing to recover from when no call failed after the fault started.
    recoverMs: firstFailureAfter(calls, marks.startMs) === undefined ? undefined : report.timeToRecoverMs,
    lastFailureMs: lastFailureAfter(calls, marks.endMs),
    audit,
    grantsWithoutCheck: grantsWithoutCheck(calls, loadStartEpochMs),
    answeredLocked: subjectsAnsweredLocked(calls),
    failureRuns: failureRuns(failuresBefore, await readFailureCounts(lab, names), expectedFailureRuns(calls)),
    logs: lab.replicas.map((r, i) => replicaLogFigures(r.process, fromLines[i] ?? 0, faultStartEpochMs)),
  };
}

/**
 * Waits until every replica runs and its log says both stores are up and the hot state is in Redis
 * (as after a start, or once a fault is over), polling every 100 ms for at most `timeoutMs` ms
 * (default 15_000). Rejects naming the replicas that are not there yet.
 */
export async function settled(lab: DegradedLab, timeoutMs = 15_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  const notYet = () =>
    lab.replicas
      .filter((r) => {
        const state = loggedState(r.process);
        const hot = state.hotStore === undefined || state.hotStore === "redis";
        return !r.process.running || state.up.postgresql === false || state.up.redis === false || !hot;
      })
      .map((r) => r.process.id);
  for (;;) {
    const waiting = notYet();
    if (waiting.length === 0) return;
    if (performance.now() > deadline) {
      throw new Error(`replicas not back on both stores within ${timeoutMs} ms: ${waiting.join(", ")}`);
    }
    await sleep(100);
  }
}
