import type { Meter } from "@opentelemetry/api";

/** What the audit outbox gauges read. */
export interface AuditOutboxGauges {
  /** Events in the outbox, not yet stored in PostgreSQL. */
  entries: number;
  /** How long the oldest of them has waited, in s; 0 when the outbox is empty. */
  oldestAgeSeconds: number;
}

/**
 * Publishes `stepgate.audit.outbox.entries` and `stepgate.audit.outbox.oldest_age` (s), read from
 * `read` at each collection. `read` may wait on Redis (it must be bounded) and resolves undefined
 * when the outbox cannot be read: nothing is observed then, rather than a made-up figure. Every
 * replica reads the same fleet-wide outbox.
 */
export function observeAuditOutbox(meter: Meter, read: () => Promise<AuditOutboxGauges | undefined>): void {
  const entries = meter.createObservableGauge("stepgate.audit.outbox.entries", {
    description: "Audit events waiting in the Redis outbox for PostgreSQL (fleet-wide)",
  });
  const oldestAge = meter.createObservableGauge("stepgate.audit.outbox.oldest_age", {
    description: "How long the oldest audit event in the outbox has waited for PostgreSQL",
    unit: "s",
  });
  meter.addBatchObservableCallback(
    async (result) => {
      const now = await read();
      if (now === undefined) return;
      result.observe(entries, now.entries);
      result.observe(oldestAge, now.oldestAgeSeconds);
    },
    [entries, oldestAge],
  );
}
