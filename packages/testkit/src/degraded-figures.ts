import type { ExpectedRun } from "./degraded-lockouts.ts";
import type { FlowCall, FlowRpc } from "./flow-load.ts";

/** The calls a degraded-mode run makes, in report order. */
export const flowRpcs: FlowRpc[] = ["StepUp", "Verify", "CheckGrant", "ReplayProbe"];

/** Counts and latencies of one kind of call over a window of a run. */
export interface CallFigures {
  calls: number;
  ok: number;
  failed: number;
  /** ok / calls × 100; 100 when there was no call. */
  successPct: number;
  /** Nearest-rank latencies of the calls, in ms (0 when there was none). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Failed calls by `failureKey` (`<code>/<reason>`). */
  failures: Record<string, number>;
}

/** Which calls a window holds: those whose start is in [fromMs, toMs), ms since the load started. */
export interface CallWindow {
  fromMs: number;
  toMs: number;
}

/** `CallFigures` of every kind of call that started in `window` (all calls without one). Throws nothing. */
export function callFigures(calls: readonly FlowCall[], window?: CallWindow): Record<FlowRpc, CallFigures> {
  const inside = window ? calls.filter((c) => c.startMs >= window.fromMs && c.startMs < window.toMs) : calls;
  return Object.fromEntries(
    flowRpcs.map((rpc) => [rpc, summarize(inside.filter((c) => c.rpc === rpc))]),
  ) as Record<FlowRpc, CallFigures>;
}

/** StepUp and Verify calls that started in `window` and succeeded, in % (100 for none), with the
 * counts: the degraded-mode goals are stated over these two calls. Throws nothing. */
export function stepUpVerifySuccess(
  calls: readonly FlowCall[],
  window: CallWindow,
): { calls: number; ok: number; pct: number } {
  const inside = calls.filter(
    (c) =>
      (c.rpc === "StepUp" || c.rpc === "Verify") && c.startMs >= window.fromMs && c.startMs < window.toMs,
  );
  const ok = inside.filter((c) => c.ok).length;
  return { calls: inside.length, ok, pct: percent(ok, inside.length) };
}

/** The claims of a grant token that tell whether a second factor was checked for it. */
interface GrantClaims {
  sub?: string;
  sid?: string;
  amr?: string[];
  auth_time?: number;
  jti?: string;
}

/** The payload of a compact JWT, unverified (the load's grants come from the lab's own replicas);
 * an empty object when it cannot be read. Throws nothing. */
export function grantClaims(token: string): GrantClaims {
  try {
    return JSON.parse(Buffer.from(token.split(".")[1] ?? "", "base64url").toString("utf8")) as GrantClaims;
  } catch {
    return {};
  }
}

/** The grant ids (`jti`) of every grant the load received, each once. Throws nothing. */
export function receivedGrantIds(calls: readonly FlowCall[]): string[] {
  const ids = new Set<string>();
  for (const c of calls) {
    const jti = c.grant === undefined ? undefined : grantClaims(c.grant).jti;
    if (jti) ids.add(jti);
  }
  return [...ids];
}

/**
 * Grants the load received for which no second factor was checked in their flow: a StepUp answered
 * with a grant on a session that never verified (the load's sessions are fresh), a replayed code
 * accepted, or a Verify grant whose subject, session or `amr` is not the flow's or whose `auth_time`
 * (s) is older than the flow's start (an earlier elevation answered, not this check; 1 s allowed for
 * rounding). `loadStartEpochMs` is the load's start on the wall clock. Returns the count and up to
 * five descriptions. Throws nothing.
 */
export function grantsWithoutCheck(
  calls: readonly FlowCall[],
  loadStartEpochMs: number,
): { count: number; examples: string[] } {
  const examples: string[] = [];
  let count = 0;
  for (const c of calls) {
    if (c.grant === undefined) continue;
    const claims = grantClaims(c.grant);
    const flowStartS = Math.floor((loadStartEpochMs + c.flowStartMs) / 1000);
    const why =
      c.rpc !== "Verify"
        ? `${c.rpc} answered with a grant`
        : claims.sub !== c.subject || claims.sid !== c.sessionId
          ? "Verify grant for another subject or session"
          : !claims.amr?.includes("otp")
            ? "Verify grant without otp in amr"
            : (claims.auth_time ?? 0) < flowStartS - 1
              ? `Verify grant with auth_time ${claims.auth_time} before its flow (${flowStartS})`
              : undefined;
    if (why === undefined) continue;
    count++;
    if (examples.length < 5) examples.push(`${why} at +${Math.round(c.endMs)} ms`);
  }
  return { count, examples };
}

/**
 * What the load did to each subject's run of failures, by subject: the replay probes refused
 * (CODE_REPLAYED counts as a failed attempt) since its last successful Verify, in the order calls
 * ended, and whether it had one. Throws nothing.
 */
export function expectedFailureRuns(calls: readonly FlowCall[]): Map<string, ExpectedRun> {
  const runs = new Map<string, ExpectedRun>();
  for (const c of [...calls].sort((a, b) => a.endMs - b.endMs)) {
    const run = runs.get(c.subject) ?? { probes: 0, succeeded: false };
    if (c.rpc === "Verify" && c.ok) runs.set(c.subject, { probes: 0, succeeded: true });
    else if (c.rpc === "ReplayProbe" && c.ok) runs.set(c.subject, { ...run, probes: run.probes + 1 });
  }
  return runs;
}

/** Subjects that were answered SUBJECT_LOCKED by some call. Throws nothing. */
export function subjectsAnsweredLocked(calls: readonly FlowCall[]): number {
  return new Set(calls.filter((c) => c.failure?.endsWith("/SUBJECT_LOCKED")).map((c) => c.subject)).size;
}

/** The first failed call that ended at or after `fromMs`: when it ended, in ms after `fromMs`. */
export function firstFailureAfter(calls: readonly FlowCall[], fromMs: number): number | undefined {
  let first: number | undefined;
  for (const c of calls) {
    if (!c.ok && c.endMs >= fromMs && (first === undefined || c.endMs < first)) first = c.endMs;
  }
  return first === undefined ? undefined : Math.round(first - fromMs);
}

/** The last failed call that ended at or after `fromMs`: when it ended, in ms after `fromMs`. */
export function lastFailureAfter(calls: readonly FlowCall[], fromMs: number): number | undefined {
  let last: number | undefined;
  for (const c of calls) {
    if (!c.ok && c.endMs >= fromMs && (last === undefined || c.endMs > last)) last = c.endMs;
  }
  return last === undefined ? undefined : Math.round(last - fromMs);
}

function summarize(calls: readonly FlowCall[]): CallFigures {
  const failures: Record<string, number> = {};
  let ok = 0;
  for (const c of calls) {
    if (c.ok) ok++;
    else {
      const key = c.failure ?? "UNKNOWN/";
      failures[key] = (failures[key] ?? 0) + 1;
    }
  }
  const sorted = Float64Array.from(calls.map((c) => c.endMs - c.startMs)).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : (sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0);
  return {
    calls: calls.length,
    ok,
    failed: calls.length - ok,
    successPct: percent(ok, calls.length),
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: at(1),
    failures,
  };
}

const percent = (ok: number, all: number) => (all === 0 ? 100 : (ok / all) * 100);
