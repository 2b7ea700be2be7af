import type { Database } from "../store/database.ts";
import { sqlFor } from "../store/sql.ts";

/** A security-relevant event; `details` must never hold a secret or a code. */
export interface AuditRecord {
  type: string;
  subject?: string;
  caller?: string;
  details?: Record<string, unknown>;
}

export type AuditLog = (record: AuditRecord) => Promise<void>;

/** Appends audit events to PostgreSQL. A failed write is reported, never thrown into the flow. */
export function createAuditLog(db: Database, replica: string, onError: (error: unknown) => void): AuditLog {
  const sql = sqlFor(db);
  return async (record) => {
    try {
      await sql(
        "insert into audit_events (at, type, subject, caller, replica, details) values (now(), ?, ?, ?, ?, ?)",
        [
          record.type,
          record.subject ?? null,
          record.caller ?? null,
          replica,
          JSON.stringify(record.details ?? {}),
        ],
      );
    } catch (error) {
      onError(error);
    }
  };
}
