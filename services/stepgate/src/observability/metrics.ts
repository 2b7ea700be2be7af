import { type Attributes, metrics } from "@opentelemetry/api";
import { type AuditOutboxGauges, observeAuditOutbox } from "./audit-outbox-gauges.ts";
import { observeProcessMemory } from "./process-memory.ts";
import { observeSigningKeys, type SigningKeyGauges } from "./signing-key-gauges.ts";

/**
 * Stepgate's instruments, and `stepgate.process.memory{kind}` (observability/process-memory.ts).
 * Without a configured SDK they are no-ops. Attribute values are bounded
 * sets (actions from the policy, methods, outcomes, status codes): never subjects or codes.
 */
export interface Metrics {
  /** StepUp latency in seconds, by action and outcome (grant, challenge, enrollment_required, or an error reason). */
  stepUpDuration(seconds: number, attributes: Attributes): void;
  /** Verify latency in seconds, by method and outcome. */
  verifyDuration(seconds: number, attributes: Attributes): void;
  /** One verification by method and result (success, wrong_code, code_replayed, ...). */
  verification(attributes: Attributes): void;
  /** One RPC that ended in an error, by method and status code. */
  rpcError(attributes: Attributes): void;
  /** One RPC that ended, with any status (OK too), by method and status code. */
  rpcCall(attributes: Attributes): void;
  /** Publishes the signing-key gauges (observability/signing-key-gauges.ts), read at each collection. */
  observeSigningKeys(read: () => SigningKeyGauges): void;
  /** Publishes the audit outbox gauges (observability/audit-outbox-gauges.ts), read at each collection. */
  observeAuditOutbox(read: () => Promise<AuditOutboxGauges | undefined>): void;
  /**
   * Publishes `stepgate.dependency.up{dependency}` (1 while the dependency's circuit is closed, 0
   * while open) and `stepgate.degraded` (1 while any dependency is down), read from `read` at
   * each collection.
   */
  observeDependencies(read: () => { dependency: string; up: boolean }[]): void;
  /**
   * One call shed by admission control, by priority, cause (queue_full, deadline, overloaded) and
   * caller (the first 50 named, the rest "_other").
   */
  shed(attributes: { priority: string; cause: string; caller: string }): void;
  /**
   * One lockout started by a wrong answer from `caller` (the calling service whose Verify reached
   * `max_failures`): a caller that locks many users out shows here, and as `lockout.started` events.
   */
  lockoutStarted(caller: string): void;
  /** One call refused by a rate limit, by priority, limit (subject, caller, source) and caller. */
  rateLimited(attributes: { priority: string; limit: string; caller: string }): void;
  /**
   * `count` TLS handshakes refused for `reason`, one of a small fixed set (server/tls-refusals.ts);
   * a count of 0 declares the series, so dashboards read 0 before the first refusal.
   */
  tlsHandshakesRefused(reason: string, count: number): void;
  /** One connection paused (no new streams) for `pauseMs` because its calls kept being refused. */
  connectionPaused(pauseMs: number): void;
  /**
   * Publishes `stepgate.admission.limit`, `stepgate.admission.in_flight`,
   * `stepgate.admission.best_effort_slots`,
   * `stepgate.admission.queued{priority}` and `stepgate.event_loop.utilization` (0 to 1), read from
   * `read` at each collection.
   */
  observeAdmission(read: () => AdmissionGauges): void;
}

/** What the admission gauges read. */
export interface AdmissionGauges {
  limit: number;
  inFlight: number;
  /** Slots normal and low calls may hold together. */
  bestEffortSlots: number;
  queued: Record<string, number>;
  eventLoopUtilization: number;
}

// Latency buckets in seconds, from sub-millisecond to the client deadlines.
const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export function createMetrics(): Metrics {
  const meter = metrics.getMeter("stepgate");
  const histogram = (name: string, description: string) =>
    meter.createHistogram(name, {
      description,
      unit: "s",
      advice: { explicitBucketBoundaries: latencyBuckets },
    });
  const stepUp = histogram("stepgate.step_up.duration", "StepUp latency");
  const verify = histogram("stepgate.verify.duration", "Verify latency");
  const verifications = meter.createCounter("stepgate.verifications", {
    description: "Second-factor verifications by method and result",
  });
  const rpcErrors = meter.createCounter("stepgate.rpc.errors", {
    description: "RPCs that ended in an error, by code",
  });
  const rpcCalls = meter.createCounter("stepgate.rpc.calls", {
    description: "RPCs that ended, with any status, by method and code",
  });
  const shed = meter.createCounter("stepgate.calls.shed", {
    description: "Calls shed by admission control before they started, by priority, cause and caller",
  });
  const rateLimited = meter.createCounter("stepgate.calls.rate_limited", {
    description: "Calls refused by a fleet-wide rate limit, by priority, limit and caller",
  });
  // A zero series from the start, so dashboards read 0 rather than "no data" before the first shed call.
  shed.add(0);
  rateLimited.add(0);
  const lockouts = meter.createCounter("stepgate.lockouts", {
    description: "Subjects locked out by a run of wrong answers, by the calling service that sent the last",
  });
  lockouts.add(0);
  const tlsRefused = meter.createCounter("stepgate.tls.handshakes_refused", {
    description:
      "TLS handshakes the replica refused before any call, by reason (no_certificate, untrusted, ...)",
  });
  const connectionPauses = meter.createCounter("stepgate.connections.paused", {
    description: "Connections told to open no new stream for a while, their calls kept being refused",
  });
  const connectionPauseTime = meter.createCounter("stepgate.connections.paused_time", {
    description: "Time connections were told to open no new stream, summed",
    unit: "s",
  });
  const callerLabel = boundedCallerLabels();
  observeProcessMemory(meter);
  return {
    lockoutStarted: (caller) => lockouts.add(1, { caller: callerLabel(caller) }),
    shed: (a) => shed.add(1, { ...a, caller: callerLabel(a.caller) }),
    rateLimited: (a) => rateLimited.add(1, { ...a, caller: callerLabel(a.caller) }),
    tlsHandshakesRefused: (reason, count) => tlsRefused.add(count, { reason }),
    connectionPaused(pauseMs) {
      connectionPauses.add(1);
      connectionPauseTime.add(pauseMs / 1000);
    },
    observeAdmission(read) {
      const gauge = (name: string, description: string, unit?: string) =>
        meter.createObservableGauge(name, { description, ...(unit ? { unit } : {}) });
      const limit = gauge("stepgate.admission.limit", "Calls this replica lets run at once (adaptive)");
      const inFlight = gauge("stepgate.admission.in_flight", "Calls running now");
      const bestEffort = gauge(
        "stepgate.admission.best_effort_slots",
        "Slots normal- and low-priority calls may hold together (kept so the event loop has room)",
      );
      const queued = gauge("stepgate.admission.queued", "Calls waiting for a slot, by priority");
      const loop = gauge(
        "stepgate.event_loop.utilization",
        "Share of the last 100 ms the event loop was busy",
        "1",
      );
      meter.addBatchObservableCallback(
        (result) => {
          const now = read();
          result.observe(limit, now.limit);
          result.observe(inFlight, now.inFlight);
          result.observe(bestEffort, now.bestEffortSlots);
          for (const [priority, n] of Object.entries(now.queued)) result.observe(queued, n, { priority });
          result.observe(loop, now.eventLoopUtilization);
        },
        [limit, inFlight, bestEffort, queued, loop],
      );
    },
    stepUpDuration: (s, a) => stepUp.record(s, a),
    verifyDuration: (s, a) => verify.record(s, a),
    verification: (a) => verifications.add(1, a),
    rpcError: (a) => rpcErrors.add(1, a),
    rpcCall: (a) => rpcCalls.add(1, a),
    observeSigningKeys: (read) => observeSigningKeys(meter, read),
    observeAuditOutbox: (read) => observeAuditOutbox(meter, read),
    observeDependencies(read) {
      meter
        .createObservableGauge("stepgate.dependency.up", {
          description: "1 while the dependency answers (its circuit is closed), 0 while it is down",
        })
        .addCallback((result) => {
          for (const d of read()) result.observe(d.up ? 1 : 0, { dependency: d.dependency });
        });
      meter
        .createObservableGauge("stepgate.degraded", {
          description: "1 while the replica serves in a degraded mode (a dependency is down)",
        })
        .addCallback((result) => result.observe(read().some((d) => !d.up) ? 1 : 0));
    },
  };
}

/**
 * Names the first `max` callers seen, the rest "_other": metric attribute values must come from a
 * bounded set, and the caller is whatever the calling service says it is.
 */
function boundedCallerLabels(max = 50): (caller: string) => string {
  const named = new Set<string>();
  return (caller) => {
    if (named.has(caller)) return caller;
    if (named.size >= max) return "_other";
    named.add(caller);
    return caller;
  };
}
