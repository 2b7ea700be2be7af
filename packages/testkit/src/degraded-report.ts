import { flowRpcs } from "./degraded-figures.ts";
import { firstChange, type LoggedChange, lastingUp, type ReplicaLogFigures } from "./degraded-logs.ts";
import type { ScenarioResult } from "./degraded-run.ts";
import { timelineStrip } from "./flow-timeline.ts";

const pad = (v: string | number, n: number) => String(v).padStart(n);
const ms = (v: number | undefined) => (v === undefined ? "-" : `${v} ms`);
const s = (v: number) => `${(v / 1000).toFixed(1)} s`;
const pct = (v: number) => v.toFixed(2);

/** Each replica's first logged change of `what` at or after `fromMs` (ms after the fault started). */
function perReplica(
  r: ScenarioResult,
  pick: (l: ScenarioResult["logs"][number]) => LoggedChange[],
  what: string,
  fromMs: number,
): string {
  return r.logs
    .map((l) => {
      const at = firstChange(pick(l), what, fromMs);
      return at === undefined ? "-" : `+${Math.round(at)}`;
    })
    .join("/");
}

/** One replica's log figures on one line: calls by status, dependency changes, hot-state moves,
 * error lines by message. */
function replicaLine(l: ReplicaLogFigures, deps: readonly string[]): string {
  const counts = (o: Record<string, number>, sep: string) =>
    Object.entries(o)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k}${sep}${n}`)
      .join(sep === "=" ? " " : ", ");
  const changes = deps
    .map((d) => {
      const n = (c: LoggedChange[]) => c.filter((x) => x.what === d).length;
      return `${d} down x${n(l.down)} up x${n(l.up)}`;
    })
    .join(", ");
  const errors = Object.keys(l.errors).length ? `; errors: ${counts(l.errors, " x")}` : "";
  return (
    `${l.id}: calls ${counts(l.statuses, "=")}; logged ${changes}, hot state moved x${l.hotMoves.length}` +
    `${l.callFailed ? `; call failed x${l.callFailed}` : ""}${errors}`
  );
}

/**
 * A scenario's figures as a compact table, one string per line, each starting with `# ` (node:test
 * shows such lines as diagnostics): per call, success %, p50/p99/max (ms) during the fault and
 * over the whole run, failures by `<code>/<reason>`; times to detect and to recover, seen by the
 * client and logged by the replicas; success after detection; audit events expected vs found;
 * replays, grants without a check, lockouts; the replicas' call statuses; the timeline.
 */
export function formatScenarioResult(r: ScenarioResult): string[] {
  const { marks } = r.outcome;
  const rep = r.report;
  const endMsAfterStart = marks.endMs - marks.startMs;
  const lines = [
    `# ${r.scenario.title} [${r.scenario.name}]: ${r.scenario.how}`,
    `#   load ${r.ratePerSecond} flows/s over ${r.logs.length} replicas: ${s(r.preMs)} before, fault ` +
      `${s(endMsAfterStart)} (in place after ${marks.appliedMs - marks.startMs} ms, repair took ` +
      `${marks.endMs - marks.repairMs} ms), ${s(r.postMs)} after; ${rep.started} started, ${rep.flowsOk} flows ok, ` +
      `${rep.flowsFailed} failed, ${rep.unfinished} unfinished, ${rep.skippedNoSubject} skipped (no subject free)`,
    `#   ${"call".padEnd(11)} ${pad("fault:", 7)} ${pad("calls", 5)} ${pad("ok %", 6)} ${pad("p50", 5)} ${pad("p99", 5)} ${pad("max", 5)}` +
      ` | ${pad("run:", 5)} ${pad("calls", 5)} ${pad("ok %", 6)} ${pad("p50", 5)} ${pad("p99", 5)} ${pad("max", 5)}  failures (whole run)`,
  ];
  for (const rpc of flowRpcs) {
    const f = r.duringFault[rpc];
    const w = r.whole[rpc];
    const failures = Object.entries(w.failures)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k}=${n}`)
      .join(" ");
    lines.push(
      `#   ${rpc.padEnd(11)} ${pad("", 7)} ${pad(f.calls, 5)} ${pad(pct(f.successPct), 6)} ${pad(Math.round(f.p50Ms), 5)} ` +
        `${pad(Math.round(f.p99Ms), 5)} ${pad(Math.round(f.maxMs), 5)} | ${pad("", 5)} ${pad(w.calls, 5)} ` +
        `${pad(pct(w.successPct), 6)} ${pad(Math.round(w.p50Ms), 5)} ${pad(Math.round(w.p99Ms), 5)} ` +
        `${pad(Math.round(w.maxMs), 5)}  ${failures}`.trimEnd(),
    );
  }
  const deps = r.scenario.dependencies;
  const replicaIds = r.logs.map((l) => l.id).join("/");
  const down = deps.map((d) => `${d} down ${perReplica(r, (l) => l.down, d, -10)}`).join(", ");
  const upFrom = marks.repairMs - marks.startMs - 10;
  const up = deps
    .map(
      (d) =>
        `${d} up ${r.logs
          .map((l) => {
            const at = lastingUp(l, d, upFrom);
            return at === undefined ? "-" : `+${Math.round(at)}`;
          })
          .join("/")}`,
    )
    .join(", ");
  const hotBack = deps.includes("redis")
    ? `, hot state to redis ${perReplica(r, (l) => l.hotMoves, "redis", upFrom)}`
    : "";
  lines.push(
    `#   detect: first failed call during the fault ${ms(r.detectMs)} after its start; ${replicaIds} logged ${down} (ms after the start)`,
    `#   recover: first 250 ms with calls and no failure ${ms(r.recoverMs)} after the fault's end, last failure ` +
      `${ms(r.lastFailureMs)} after it; logged ${up} (for good)${hotBack} (ms after the fault's start; the end was at +${endMsAfterStart})`,
  );
  const a = r.afterDetection;
  const share = (w: { calls: number; ok: number; pct: number }) => `${pct(w.pct)}% (${w.ok}/${w.calls})`;
  lines.push(
    `#   after detection, StepUp+Verify: ${share(a.outsideWindows)} started outside the first ` +
      `${s(r.detectionWindowMs)} after the fault's start and after its end; from ${s(r.detectionWindowMs)} into ` +
      `the fault: ${share(a.untilFaultEnd)} until its end, ${share(a.untilLoadEnd)} until the load's end`,
  );
  if (r.audit) {
    const au = r.audit;
    lines.push(
      `#   audit: ${au.expected} grants received, ${au.found} grant events found (verify.succeeded + grant.issued), the count ` +
        `${au.settled ? `stable ${s(au.drainMs)} after the load ended` : "still growing when the wait ended"}: ${au.missing} missing, ${au.extra} extra, ` +
        `${au.duplicates} duplicate; outbox left ${au.outboxLeft ?? "?"}`,
    );
  }
  const fr = r.failureRuns;
  lines.push(
    `#   replays accepted ${rep.replays}, grants without a check ${r.grantsWithoutCheck.count}, subjects locked out ` +
      `${Math.max(fr.locked, r.answeredLocked)} (answered SUBJECT_LOCKED ${r.answeredLocked}, past the limit ${fr.locked}; ` +
      `runs of failures left ${fr.withFailures}, ${fr.unexplained} longer than the replay probes explain, read from ${fr.from ?? "nothing"})`,
  );
  for (const example of r.grantsWithoutCheck.examples) lines.push(`#   grant without a check: ${example}`);
  for (const l of r.logs) lines.push(`#   ${replicaLine(l, deps)}`);
  for (const l of r.logs) for (const e of l.callFailedLines) lines.push(`#   ${l.id}: ${e}`);
  for (const note of r.outcome.notes) lines.push(`#   ${note}`);
  lines.push(
    `#   timeline (250 ms, . ok  x failed  ! both; | fault start and end): [${timelineStrip(rep.timeline, [marks.startMs, marks.endMs])}]`,
  );
  return lines;
}
