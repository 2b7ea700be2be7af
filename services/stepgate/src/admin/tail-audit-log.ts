import type { AuditLog } from "../audit/audit-log.ts";
import { type Operator, operatorCaller, operatorDetails } from "../domain/operator.ts";
import type { AuditFilter, AuditTrail, StoredAuditEvent } from "../store/audit-trail.ts";

/**
 * The audit events that match `filter` (store/audit-trail.ts), after this replica has moved what
 * its outbox holds to PostgreSQL. A first read (no `afterCursor`) is recorded as
 * `admin.audit_read` with the filters; the polls that follow the trail are not, so following it
 * does not fill it. Rejects with the store's error (UNAVAILABLE while PostgreSQL is down).
 */
export type TailAuditLog = (input: {
  filter: AuditFilter;
  operator: Operator;
}) => Promise<StoredAuditEvent[]>;

export interface TailAuditLogDeps {
  trail: AuditTrail;
  audit: Pick<AuditLog, "record" | "flush">;
}

export function createTailAuditLog({ trail, audit }: TailAuditLogDeps): TailAuditLog {
  return async ({ filter, operator }) => {
    if (filter.afterCursor === undefined) {
      await audit.record({
        type: "admin.audit_read",
        ...(filter.subject === undefined ? {} : { subject: filter.subject }),
        caller: operatorCaller(operator.name),
        details: {
          ...operatorDetails(operator, "audit.read"),
          filter: {
            ...(filter.type === undefined ? {} : { type: filter.type }),
            ...(filter.caller === undefined ? {} : { caller: filter.caller }),
            ...(filter.since === undefined ? {} : { since: filter.since.toISOString() }),
            limit: filter.limit,
          },
        },
      });
    }
    // Best effort: events still in another replica's outbox arrive with the next read.
    await audit.flush().catch(() => {});
    return trail.tail(filter);
  };
}
