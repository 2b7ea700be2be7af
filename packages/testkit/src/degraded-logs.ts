import type { ReplicaProcess } from "./replica-process.ts";

/** A dependency state change or hot-state move a replica logged, in ms after the fault started. */
export interface LoggedChange {
  /** `postgresql` or `redis` for "dependency down"/"dependency up"; the store for "hot state moved". */
  what: string;
  atMs: number;
}

/** What one replica logged during a run (its JSON lines: server/run.ts, rpc/call-accounting.ts). */
export interface ReplicaLogFigures {
  id: string;
  /** "dependency down" lines. */
  down: LoggedChange[];
  /** "dependency up" lines. */
  up: LoggedChange[];
  /** "hot state moved" lines: `what` is the store the hot state moved to. */
  hotMoves: LoggedChange[];
  /** Calls by the status they ended with ("call" and "call failed" lines of StepUpService and FactorService). */
  statuses: Record<string, number>;
  /** "call failed" lines: handlers that failed unexpectedly (the client got INTERNAL). */
  callFailed: number;
  /** Error lines by message and error message (e.g. `security state not carried back into redis
   * yet (redis is unavailable)`), "audit events not written yet" included: how many of each. */
  errors: Record<string, number>;
  /** The first "call failed" lines as they were written, trimmed to 300 characters. */
  callFailedLines: string[];
}

interface LogLine {
  msg?: string;
  time?: string;
  level?: string;
  dependency?: string;
  hotStore?: string;
  rpc?: string;
  status?: string;
  error?: { name?: string; message?: string };
}

/** How many "call failed" lines `replicaLogFigures` keeps as they were. */
const keptCallFailedLines = 3;

/**
 * Reads `replica.lines` from index `fromLine` on: dependency changes and hot-state moves with their
 * time in ms after `faultStartEpochMs` (negative before it), call statuses, failed calls and audit
 * errors. Lines that are not JSON are skipped. Throws nothing.
 */
export function replicaLogFigures(
  replica: ReplicaProcess,
  fromLine: number,
  faultStartEpochMs: number,
): ReplicaLogFigures {
  const figures: ReplicaLogFigures = {
    id: replica.id,
    down: [],
    up: [],
    hotMoves: [],
    statuses: {},
    callFailed: 0,
    errors: {},
    callFailedLines: [],
  };
  for (const raw of replica.lines.slice(fromLine)) {
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch {
      continue;
    }
    const atMs = line.time ? Date.parse(line.time) - faultStartEpochMs : Number.NaN;
    const change = (what: string | undefined) => ({ what: what ?? "?", atMs });
    if (line.msg === "dependency down") figures.down.push(change(line.dependency));
    else if (line.msg === "dependency up") figures.up.push(change(line.dependency));
    else if (line.msg === "hot state moved") figures.hotMoves.push(change(line.hotStore));
    if ((line.msg === "call" || line.msg === "call failed") && line.rpc?.startsWith("stepgate.v1.")) {
      const status = line.status ?? "?";
      figures.statuses[status] = (figures.statuses[status] ?? 0) + 1;
    }
    if (line.msg === "call failed") {
      figures.callFailed++;
      if (figures.callFailedLines.length < keptCallFailedLines)
        figures.callFailedLines.push(raw.slice(0, 300));
    } else if (line.level === "error" || line.level === "fatal") {
      const key = `${line.msg ?? "?"}${line.error?.message ? ` (${line.error.message.slice(0, 80)})` : ""}`;
      figures.errors[key] = (figures.errors[key] ?? 0) + 1;
    }
  }
  return figures;
}

/**
 * When `what` came up for good: the first "dependency up" at or after `fromMs` (ms after the fault
 * started) that no "dependency down" follows (an open circuit's trial logs "up", and "down" again
 * when it fails). Undefined when there is none. Throws nothing.
 */
export function lastingUp(figures: ReplicaLogFigures, what: string, fromMs: number): number | undefined {
  const downs = figures.down.filter((c) => c.what === what).map((c) => c.atMs);
  const lastDown = downs.length === 0 ? Number.NEGATIVE_INFINITY : Math.max(...downs);
  return firstChange(figures.up, what, Math.max(fromMs, lastDown));
}

/** The first change of `what` at or after `fromMs` (ms after the fault started), or undefined. */
export function firstChange(
  changes: readonly LoggedChange[],
  what: string,
  fromMs: number,
): number | undefined {
  const found = changes.filter((c) => c.what === what && c.atMs >= fromMs).map((c) => c.atMs);
  return found.length === 0 ? undefined : Math.min(...found);
}

/** What a replica's latest lines say of its stores: each dependency's last change (true: up) and
 * where the hot state last moved (undefined when it never did: it started there). */
export interface LoggedState {
  up: Record<string, boolean>;
  hotStore: string | undefined;
}

/** The state `replica.lines` leaves: the last "dependency down"/"dependency up" per dependency and
 * the last "hot state moved". Throws nothing. */
export function loggedState(replica: ReplicaProcess): LoggedState {
  const state: LoggedState = { up: {}, hotStore: undefined };
  for (const raw of replica.lines) {
    if (!raw.includes('"dependency ') && !raw.includes('"hot state moved"')) continue;
    let line: LogLine;
    try {
      line = JSON.parse(raw) as LogLine;
    } catch {
      continue;
    }
    if (line.msg === "dependency down" || line.msg === "dependency up") {
      state.up[line.dependency ?? "?"] = line.msg === "dependency up";
    } else if (line.msg === "hot state moved") state.hotStore = line.hotStore;
  }
  return state;
}
