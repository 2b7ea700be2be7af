import type { Pg } from "./sql.ts";

/** A security-relevant event; `details` must never hold a secret or a code. */
export interface AuditEvent {
  type: string;
  subject?: string;
  caller?: string;
  details?: Record<string, unknown>;
  /** When it happened. */
  at: Date;
}

/** The append-only audit trail in PostgreSQL. */
export interface AuditStore {
  /** Appends `events` in one multi-row insert, tagged with the replica that saw them. */
  append(events: AuditEvent[], replica: string): Promise<void>;
}

export function createAuditStore(pg: Pg): AuditStore {
  const run = pg.sql;
  return {
    async append(events, replica) {
      await run(
        `insert into audit_events (at, type, subject, caller, replica, details)
         select at, type, subject, caller, ?, details
         from unnest(?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::jsonb[]) as e(at, type, subject, caller, details)`,
        [
          replica,
          events.map((e) => e.at),
          events.map((e) => e.type),
          events.map((e) => e.subject ?? null),
          events.map((e) => e.caller ?? null),
          events.map((e) => JSON.stringify(e.details ?? {})),
        ],
      );
    },
  };
}
