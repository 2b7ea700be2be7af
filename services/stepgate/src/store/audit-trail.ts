import type { Pg } from "./sql.ts";

/** Which audit events to read; every filter is optional and all must match. */
export interface AuditFilter {
  subject?: string;
  /** A type, or a prefix of types when it ends in "." (e.g. "admin."). */
  type?: string;
  caller?: string;
  /** At or after this time. */
  since?: Date;
  /** Only events after this cursor (a stored event's `cursor`), oldest first. */
  afterCursor?: bigint;
  /** At most this many events, 1 to 1000. */
  limit: number;
}

/** An audit event as stored, with its place in the trail. */
export interface StoredAuditEvent {
  /** The table's rising id, as a decimal string. */
  cursor: string;
  at: Date;
  type: string;
  subject: string | null;
  caller: string | null;
  replica: string | null;
  details: Record<string, unknown>;
}

/** The audit trail as read back (AdminService.TailAuditLog). */
export interface AuditTrail {
  /**
   * The matching events, oldest first: those right after `afterCursor` when given (to follow the
   * trail), else the latest `limit`. Rejects with the driver's error.
   */
  tail(filter: AuditFilter): Promise<StoredAuditEvent[]>;
}

// The serving pool hands timestamps over as text or as Dates, by driver.
type Row = Omit<StoredAuditEvent, "cursor" | "at"> & { id: string; at: Date | string };

export function createAuditTrail(pg: Pg): AuditTrail {
  return {
    async tail(filter) {
      const following = filter.afterCursor !== undefined;
      // A type ending in "." matches the types under it; others match exactly.
      const rows = await pg.sql<Row>(
        `select id::text as id, at, type, subject, caller, replica, details from audit_events
         where ($1::text is null or subject = $1)
           and ($2::text is null or type = $2 or (right($2, 1) = '.' and starts_with(type, $2)))
           and ($3::text is null or caller = $3)
           and ($4::timestamptz is null or at >= $4)
           and ($5::bigint is null or id > $5)
         order by id ${following ? "asc" : "desc"} limit $6`,
        [
          filter.subject ?? null,
          filter.type ?? null,
          filter.caller ?? null,
          filter.since ?? null,
          filter.afterCursor?.toString() ?? null,
          filter.limit,
        ],
      );
      const events = rows.map(({ id, at, ...event }) => ({ cursor: id, at: new Date(at), ...event }));
      return following ? events : events.reverse();
    },
  };
}
