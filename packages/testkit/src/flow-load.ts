import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient, type StepgateClientOptions } from "@stepgate/client";
import { failureKey, failureReason } from "./failure-key.ts";
import {
  createTimelineRecorder,
  type FlowTimeline,
  timelineStrip,
  timeToDetect,
  timeToRecover,
} from "./flow-timeline.ts";
import type { FlowSubject } from "./seed-subjects.ts";
import { codeForStep, totpStep } from "./totp-code.ts";

/** The trailer that names the replica that answered (the server's `replicaTrailer`). */
export const replicaTrailer = "stepgate-replica";

/** The calls a flow load makes: a flow is StepUp → Verify → CheckGrant; a replay probe is StepUp →
 * Verify with a code that was accepted before (it must be refused with CODE_REPLAYED). */
export type FlowRpc = "StepUp" | "Verify" | "CheckGrant" | "ReplayProbe";

/** Options of `startFlowLoad`; times are in ms. */
export interface FlowLoadOptions {
  /** A client, or a grpc-js target (`ipv4:127.0.0.1:p1,127.0.0.1:p2`) for a client of the load's
   * own, closed at the end. */
  client: StepgateClient | string;
  /** For a target: the calling service's name. Default `payments`. */
  caller?: string;
  /** For a target: more client options (deadlines, retry, outlier detection, …). */
  clientOptions?: Omit<StepgateClientOptions, "target" | "caller">;
  /** Subjects with a confirmed TOTP factor (`seedSubjects`); the load moves their `lastStep` on.
   * A subject verifies at most once per 30 s step, so a run needs about `ratePerSecond * 30`
   * subjects to go on for long (half that suffices for a run under 30 s: the first flows use the
   * current step and the next one). */
  subjects: FlowSubject[];
  /** Flows started per second, whatever their latency (open loop). */
  ratePerSecond: number;
  /** How long flows are started for, in ms. */
  durationMs: number;
  /** At most this many flows (probes included). Default `ceil(ratePerSecond * durationMs / 1000)`. */
  maxFlows?: number;
  /** How long to wait for flows still running once the last one started, in ms; then they are
   * cancelled and counted as unfinished. Default 10_000. */
  drainMs?: number;
  /** The policy action stepped up for. Default `payments.transfer` (a challenge for a new session,
   * a reusable grant). */
  action?: string;
  /** Every `replayProbeEvery`-th flow is a replay probe when a subject's last accepted code is still
   * within the server's skew. 0: none. Default 10. */
  replayProbeEvery?: number;
  /** The timeline's bucket width, in ms. Default 250. */
  bucketMs?: number;
  /** Told of every call the report counts, as it ends (not of those ended after the drain). An
   * exception it throws is ignored. */
  onCall?: (call: FlowCall) => void;
}

/** One finished call of a flow load, as `onCall` sees it; times are in ms since the load started. */
export interface FlowCall {
  rpc: FlowRpc;
  /** When its flow (or probe) started: the start of its StepUp. */
  flowStartMs: number;
  startMs: number;
  endMs: number;
  /** As the report counts it (a replay probe: refused with CODE_REPLAYED). */
  ok: boolean;
  /** The `failureKey` of a call that did not end as expected (`OK/ACCEPTED`: an accepted replay). */
  failure: string | undefined;
  subject: string;
  sessionId: string;
  /** The grant token the call was answered with: a Verify's, an accepted replay's, or a StepUp's
   * answered with a grant on the flow's fresh session (a failure: a challenge was expected). */
  grant: string | undefined;
}

/** Counts and latencies of one kind of call. */
export interface RpcStats {
  calls: number;
  /** Calls that ended as expected (a replay probe: refused with CODE_REPLAYED). */
  ok: number;
  failed: number;
  /** Failed calls by `failureKey` (`<code>/<reason>`); a probe's accepted replay is `OK/ACCEPTED`. */
  failures: Record<string, number>;
  /** Latencies of all finished calls, in ms (0 when there were none). */
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** What a flow load saw. */
export interface FlowLoadReport {
  /** From the first start to the end of the drain, in ms. */
  elapsedMs: number;
  ratePerSecond: number;
  /** Flows and probes started. */
  started: number;
  /** Flows (not probes) whose three calls all succeeded, and those where one failed. */
  flowsOk: number;
  flowsFailed: number;
  /** Flows and probes still running at the end of the drain (cancelled, not counted as failed). */
  unfinished: number;
  /** Starts skipped because every subject was busy or had used its codes: too few subjects. */
  skippedNoSubject: number;
  rpcs: Record<FlowRpc, RpcStats>;
  /** Codes accepted twice: a (factor, step) that a Verify had already been granted for. Must be 0. */
  replays: number;
  /** Responses by the replica that sent them (`stepgate-replica` header). */
  byReplica: Record<string, number>;
  /** Every call's outcome by when it ended. */
  timeline: FlowTimeline;
  /** `markFaultStart()` / `markFaultEnd()`, in ms since the start, if called. */
  faultStartMs: number | undefined;
  faultEndMs: number | undefined;
  /** `timeToDetect(timeline, faultStartMs)` and `timeToRecover(timeline, faultEndMs)`, in ms. */
  timeToDetectMs: number | undefined;
  timeToRecoverMs: number | undefined;
}

/** A running flow load. */
export interface FlowLoad {
  /** Ms since the load started. */
  elapsedMs(): number;
  /** Notes that a fault starts now; returns the time, in ms since the start. */
  markFaultStart(): number;
  /** Notes that the fault ends now; returns the time, in ms since the start. */
  markFaultEnd(): number;
  /** Starts no more flows; the ones running finish (within `drainMs`). */
  stop(): void;
  /** Resolves with the report once the load is over; never rejects. */
  readonly done: Promise<FlowLoadReport>;
}

const rpcNames: FlowRpc[] = ["StepUp", "Verify", "CheckGrant", "ReplayProbe"];

/** The flow (or probe) a call belongs to; `grant` carries a StepUp's unexpected grant to `call`. */
interface FlowRef {
  subject: FlowSubject;
  sessionId: string;
  /** ms since the load started. */
  startMs: number;
  grant?: string | undefined;
}

/**
 * Starts an open-loop load of step-up flows: `ratePerSecond` starts, each on its own fresh session,
 * for `durationMs` ms or `maxFlows` starts, then up to `drainMs` ms for those still running; so it
 * is bounded in count and time and ends by itself. A flow is StepUp (a challenge is expected),
 * Verify with the subject's next unused TOTP step (the current one, else the next: one step of skew),
 * CheckGrant on the grant. Subjects rotate; a subject runs one flow at a time, and a step, once
 * sent, is never sent again except by a replay probe, whose refusal is its success. Every Verify
 * success is checked against the (factor, step) pairs accepted before: a second acceptance counts
 * in `replays`. Throws a RangeError for a rate, duration or subject list that cannot run.
 */
export function startFlowLoad(options: FlowLoadOptions): FlowLoad {
  const { subjects, ratePerSecond, durationMs } = options;
  if (!(ratePerSecond > 0) || !(durationMs > 0))
    throw new RangeError("ratePerSecond and durationMs must be positive");
  if (subjects.length === 0) throw new RangeError("a flow load needs subjects");
  const maxFlows = options.maxFlows ?? Math.ceil((ratePerSecond * durationMs) / 1000);
  const { drainMs = 10_000, action = "payments.transfer", replayProbeEvery = 10 } = options;
  const ownClient = typeof options.client === "string";
  const client =
    typeof options.client === "string"
      ? createStepgateClient({
          target: options.client,
          caller: options.caller ?? "payments",
          ...options.clientOptions,
        })
      : options.client;

  const t0 = performance.now();
  const elapsed = () => performance.now() - t0;
  const timeline = createTimelineRecorder(options.bucketMs ?? 250);
  const latencies = Object.fromEntries(rpcNames.map((r) => [r, [] as number[]])) as Record<FlowRpc, number[]>;
  const stats = Object.fromEntries(
    rpcNames.map((r) => [r, { calls: 0, ok: 0, failed: 0, failures: {} as Record<string, number> }]),
  ) as Record<FlowRpc, Omit<RpcStats, "p50Ms" | "p99Ms" | "maxMs">>;
  const byReplica: Record<string, number> = {};
  const accepted = new Set<string>();
  const busy = new Set<FlowSubject>();
  /** Accepted (subject, step) pairs not probed yet, newest last: each is replayed at most once, so
   * a probe's refusal never adds up to a subject lockout. */
  const probeable: [FlowSubject, number][] = [];
  const abort = new AbortController();
  const callOptions = {
    signal: abort.signal,
    onTrailer: (trailers: Headers) => {
      const id = trailers.get(replicaTrailer) ?? "unknown";
      byReplica[id] = (byReplica[id] ?? 0) + 1;
    },
  };
  let over = false;
  let stopped = false;
  let started = 0;
  let running = 0;
  let flowsOk = 0;
  let flowsFailed = 0;
  let skipped = 0;
  let replays = 0;
  let cursor = 0;
  let faultStartMs: number | undefined;
  let faultEndMs: number | undefined;

  /** Runs one call, records it, and returns its result, or undefined if it failed. `grantOf` reads
   * the grant token from a result; a StepUp that got a grant sets `ref.grant` before it throws. */
  const call = async <T>(
    rpc: FlowRpc,
    ref: FlowRef,
    run: () => Promise<T>,
    grantOf?: (value: T) => string | undefined,
    expectFailure?: string,
  ): Promise<T | undefined> => {
    const startMs = elapsed();
    const begin = performance.now();
    let outcome: { ok: boolean; key?: string; value?: T };
    try {
      const value = await run();
      outcome = expectFailure ? { ok: false, key: "OK/ACCEPTED", value } : { ok: true, value };
    } catch (error) {
      outcome =
        expectFailure && failureReason(error) === expectFailure
          ? { ok: true }
          : { ok: false, key: failureKey(error) };
    }
    if (over) return undefined;
    const s = stats[rpc];
    s.calls++;
    latencies[rpc].push(performance.now() - begin);
    timeline.record(elapsed(), outcome.ok);
    if (outcome.ok) s.ok++;
    else {
      s.failed++;
      const key = outcome.key ?? "UNKNOWN/";
      s.failures[key] = (s.failures[key] ?? 0) + 1;
    }
    const grant = ref.grant ?? (outcome.value === undefined ? undefined : grantOf?.(outcome.value));
    ref.grant = undefined;
    try {
      options.onCall?.({
        rpc,
        flowStartMs: ref.startMs,
        startMs,
        endMs: elapsed(),
        ok: outcome.ok,
        failure: outcome.ok ? undefined : (outcome.key ?? "UNKNOWN/"),
        subject: ref.subject.subject,
        sessionId: ref.sessionId,
        grant,
      });
    } catch {
      // An observer's error is not the load's.
    }
    return outcome.ok || expectFailure ? outcome.value : undefined;
  };

  /** StepUp on a fresh session; the challenge id, or undefined (recorded as a failure) if none came. */
  const challenge = async (ref: FlowRef) => {
    const { subject, sessionId } = ref;
    const res = await call("StepUp", ref, async () => {
      const r = await client.stepUp.stepUp({ subject: subject.subject, sessionId, action }, callOptions);
      if (r.outcome.case === "grant") ref.grant = r.outcome.value.token;
      if (r.outcome.case !== "challenge") throw new Error(`expected a challenge, got ${r.outcome.case}`);
      return r.outcome.value.challengeId;
    });
    return res;
  };

  const flow = async (subject: FlowSubject, step: number) => {
    const sessionId = `flow-${randomBytes(6).toString("hex")}`;
    const ref: FlowRef = { subject, sessionId, startMs: elapsed() };
    const challengeId = await challenge(ref);
    if (challengeId === undefined) return false;
    const token = await call(
      "Verify",
      ref,
      async () => {
        const r = await client.stepUp.verify(
          {
            challengeId,
            subject: subject.subject,
            sessionId,
            action,
            proof: { kind: { case: "totpCode", value: codeForStep(subject.secret, step) } },
            idempotencyKey: randomBytes(12).toString("hex"),
          },
          callOptions,
        );
        if (!r.grant?.token) throw new Error("Verify returned no grant");
        return r.grant.token;
      },
      (grant) => grant,
    );
    if (token === undefined) return false;
    noteAccepted(subject, step);
    const checked = await call("CheckGrant", ref, () =>
      client.stepUp.checkGrant({ token, action }, callOptions),
    );
    return checked !== undefined;
  };

  const probe = async (subject: FlowSubject, step: number) => {
    const sessionId = `probe-${randomBytes(6).toString("hex")}`;
    const ref: FlowRef = { subject, sessionId, startMs: elapsed() };
    const challengeId = await challenge(ref);
    if (challengeId === undefined) return;
    const res = await call(
      "ReplayProbe",
      ref,
      () =>
        client.stepUp.verify(
          {
            challengeId,
            subject: subject.subject,
            sessionId,
            action,
            proof: { kind: { case: "totpCode", value: codeForStep(subject.secret, step) } },
            idempotencyKey: randomBytes(12).toString("hex"),
          },
          callOptions,
        ),
      (r) => r.grant?.token,
      "CODE_REPLAYED",
    );
    if (res !== undefined) noteAccepted(subject, step);
  };

  const noteAccepted = (subject: FlowSubject, step: number) => {
    if (over) return;
    const key = `${subject.factorId}:${step}`;
    if (accepted.has(key)) replays++;
    accepted.add(key);
    probeable.push([subject, step]);
    if (probeable.length > 1000) probeable.shift();
  };

  /** The next subject that may verify now, with the step to use; rotates through the list. */
  const pickSubject = (now: number): [FlowSubject, number] | undefined => {
    for (let n = 0; n < subjects.length; n++) {
      const s = subjects[(cursor + n) % subjects.length] as FlowSubject;
      const step = Math.max(s.lastStep + 1, now);
      if (!busy.has(s) && step <= now + 1) {
        cursor = (cursor + n + 1) % subjects.length;
        return [s, step];
      }
    }
    return undefined;
  };

  /** A subject whose last accepted step is still current (so a replay is refused as a replay, not
   * as an expired code, even if a step boundary passes meanwhile). */
  const pickProbe = (now: number): [FlowSubject, number] | undefined => {
    for (let i = probeable.length - 1; i >= 0; i--) {
      const [s, step] = probeable[i] as [FlowSubject, number];
      if (step < now) continue;
      if (!busy.has(s)) return probeable.splice(i, 1)[0];
    }
    return undefined;
  };

  const inFlight = new Set<Promise<void>>();
  const launch = (i: number) => {
    const now = totpStep(Date.now() / 1000);
    const probeTarget = replayProbeEvery > 0 && (i + 1) % replayProbeEvery === 0 ? pickProbe(now) : undefined;
    const picked = probeTarget ?? pickSubject(now);
    if (!picked) {
      skipped++;
      return;
    }
    const [subject, step] = picked;
    started++;
    running++;
    busy.add(subject);
    if (!probeTarget) subject.lastStep = step;
    const p: Promise<void> = (
      probeTarget
        ? probe(subject, step)
        : flow(subject, step).then((ok) => {
            if (over) return;
            if (ok) flowsOk++;
            else flowsFailed++;
          })
    ).finally(() => {
      running--;
      busy.delete(subject);
      inFlight.delete(p);
    });
    inFlight.add(p);
  };

  const done = (async (): Promise<FlowLoadReport> => {
    const intervalMs = 1000 / ratePerSecond;
    for (let i = 0; i < maxFlows && !stopped; i++) {
      const due = i * intervalMs;
      if (due >= durationMs) break;
      const wait = due - elapsed();
      if (wait > 0) await sleep(wait);
      if (stopped) break;
      launch(i);
    }
    const drained = Promise.all(inFlight).then(() => true);
    const timer = sleep(drainMs, false, { signal: abort.signal }).catch(() => false);
    const finished = await Promise.race([drained, timer]);
    over = true;
    const unfinished = finished ? 0 : running;
    abort.abort();
    if (ownClient) client.close();
    const snapshot = timeline.snapshot();
    const rpcs = Object.fromEntries(
      rpcNames.map((r) => [r, { ...stats[r], ...summarize(latencies[r]) }]),
    ) as Record<FlowRpc, RpcStats>;
    return {
      elapsedMs: Math.round(elapsed()),
      ratePerSecond,
      started,
      flowsOk,
      flowsFailed,
      unfinished,
      skippedNoSubject: skipped,
      rpcs,
      replays,
      byReplica,
      timeline: snapshot,
      faultStartMs,
      faultEndMs,
      timeToDetectMs: faultStartMs === undefined ? undefined : timeToDetect(snapshot, faultStartMs),
      timeToRecoverMs: faultEndMs === undefined ? undefined : timeToRecover(snapshot, faultEndMs),
    };
  })();

  return {
    elapsedMs: elapsed,
    markFaultStart() {
      faultStartMs = Math.round(elapsed());
      return faultStartMs;
    },
    markFaultEnd() {
      faultEndMs = Math.round(elapsed());
      return faultEndMs;
    },
    stop() {
      stopped = true;
    },
    done,
  };
}

/**
 * `startFlowLoad(options)`, with `during(load)` run alongside (the fault: it may call
 * `load.markFaultStart()` and `load.markFaultEnd()`); resolves with the report once both are over.
 * Rejects with `during`'s error, after the load has ended.
 */
export async function runFlowLoad(
  options: FlowLoadOptions,
  during: (load: FlowLoad) => Promise<void> = async () => {},
): Promise<FlowLoadReport> {
  const load = startFlowLoad(options);
  const [fault, report] = await Promise.allSettled([during(load), load.done]);
  if (fault.status === "rejected") throw fault.reason;
  return (report as PromiseFulfilledResult<FlowLoadReport>).value;
}

/** All failed calls of a report, probes' accepted replays included. */
export function failedCalls(report: FlowLoadReport): number {
  return rpcNames.reduce((n, r) => n + report.rpcs[r].failed, 0);
}

/**
 * The report as a compact table, one string per line, each starting with `# ` (node:test prints
 * such lines of a test's output as diagnostics): a summary, a row per call with counts and
 * p50/p99/max latency (ms) and its failures, the timeline as one character per bucket (see
 * `timelineStrip`) with the fault marks, and the fault's times to detect and recover.
 */
export function formatFlowLoadReport(name: string, r: FlowLoadReport): string[] {
  const pad = (v: string | number, n: number) => String(v).padStart(n);
  const lines = [
    `# ${name}: ${r.started} started in ${(r.elapsedMs / 1000).toFixed(1)} s at ${r.ratePerSecond}/s: ` +
      `${r.flowsOk} flows ok, ${r.flowsFailed} failed, ${r.unfinished} unfinished, ` +
      `${r.skippedNoSubject} skipped (no subject free), ${r.replays} replays accepted`,
    `#   ${"call".padEnd(11)} ${pad("calls", 6)} ${pad("ok", 6)} ${pad("failed", 6)} ${pad("p50", 6)} ${pad("p99", 6)} ${pad("max", 6)}  failures`,
  ];
  for (const name of rpcNames) {
    const s = r.rpcs[name];
    const failures = Object.entries(s.failures)
      .sort((a, b) => b[1] - a[1])
      .map(([k, n]) => `${k}=${n}`)
      .join(" ");
    lines.push(
      `#   ${name.padEnd(11)} ${pad(s.calls, 6)} ${pad(s.ok, 6)} ${pad(s.failed, 6)} ` +
        `${pad(Math.round(s.p50Ms), 6)} ${pad(Math.round(s.p99Ms), 6)} ${pad(Math.round(s.maxMs), 6)}  ${failures}`.trimEnd(),
    );
  }
  const marks = [r.faultStartMs, r.faultEndMs].filter((m): m is number => m !== undefined);
  lines.push(
    `#   timeline (${r.timeline.bucketMs} ms, . ok  x failed  ! both): [${timelineStrip(r.timeline, marks)}]`,
  );
  if (r.faultStartMs !== undefined) {
    lines.push(
      `#   fault ${r.faultStartMs}-${r.faultEndMs ?? "?"} ms: detected after ${r.timeToDetectMs ?? "-"} ms, ` +
        `recovered ${r.timeToRecoverMs ?? "-"} ms after its end`,
    );
  }
  lines.push(`#   by replica: ${JSON.stringify(r.byReplica)}`);
  return lines;
}

/** Writes `formatFlowLoadReport(name, report)` to stdout. Throws nothing. */
export function printFlowLoadReport(name: string, report: FlowLoadReport): void {
  process.stdout.write(`${formatFlowLoadReport(name, report).join("\n")}\n`);
}

/** p50, p99 and max of `samples` (nearest rank), in ms; 0 for none. */
function summarize(samples: number[]): { p50Ms: number; p99Ms: number; maxMs: number } {
  const sorted = Float64Array.from(samples).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : (sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)] ?? 0);
  return { p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
}
