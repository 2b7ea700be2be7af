import type { RevocationEvent, StoredRevocation } from "../domain/revocation.ts";
import { groupCommit } from "./group-commit.ts";
import type { Pg, Sql } from "./sql.ts";

/**
 * The revocation feed's durable source: `revocation_events` in PostgreSQL. Rows are numbered in
 * commit order (every append holds one transaction-scoped advisory lock while it takes its numbers),
 * so a reader that asks for what follows the last number it saw never skips a row that commits later.
 */
export interface RevocationLog {
  /** Stores `events` (an event whose id is stored already is skipped). Rejects as PostgreSQL does. */
  append(events: RevocationEvent[]): Promise<void>;
  /** Up to `limit` unexpired revocations after `seq`, in order. */
  after(seq: bigint, limit: number, nowMs: number): Promise<StoredRevocation[]>;
  /** The highest number taken so far (0 when none). */
  head(): Promise<bigint>;
  /** Deletes revocations that expired before `beforeMs`, at most `limit`; resolves with how many. */
  prune(beforeMs: number, limit: number): Promise<number>;
}

// Held for the insert only: appends queue for a few microseconds each, and readers never wait.
const appendLock = "6013542238290260069";

/** Inserts `events` inside the caller's transaction `run`, in feed order; idempotent per event id. */
export async function appendRevocations(run: Sql, events: RevocationEvent[]): Promise<void> {
  if (events.length === 0) return;
  await run("select pg_advisory_xact_lock($1::bigint)", [appendLock]);
  await run(
    `insert into revocation_events (event_id, kind, target, revoked_at, expires_at)
       select * from unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
       on conflict (event_id) do nothing`,
    [
      events.map((e) => e.id),
      events.map((e) => e.kind),
      events.map((e) => e.target),
      events.map((e) => new Date(e.revokedAtMs)),
      events.map((e) => new Date(e.expiresAtMs)),
    ],
  );
}

interface Row {
  seq: string;
  event_id: string;
  kind: StoredRevocation["kind"];
  target: string;
  revoked_ms: string;
  expires_ms: string;
}

// Whole ms since the epoch, as text: the driver's own timestamp parsing is not relied on.
const epochMs = (column: string) => `(extract(epoch from ${column}) * 1000)::bigint::text`;

const stored = (row: Row): StoredRevocation => ({
  seq: BigInt(row.seq),
  id: row.event_id,
  kind: row.kind,
  target: row.target,
  revokedAtMs: Number(row.revoked_ms),
  expiresAtMs: Number(row.expires_ms),
});

export function createRevocationLog(pg: Pg): RevocationLog {
  // Revocations made at once (a flood of EndSession) share one transaction and one lock.
  let taken = 0;
  const append = groupCommit<RevocationEvent[], void>({
    maxBatch: 64,
    // Any two appends may share a batch: each gets a key of its own.
    keyOf: () => String(taken++),
    run: async (batches) => {
      await pg.transaction((tx) => appendRevocations(tx, batches.flat()));
      return batches.map(() => undefined);
    },
  });
  return {
    append: (events) => (events.length === 0 ? Promise.resolve() : append(events)),
    async after(seq, limit, nowMs) {
      const rows = await pg.sql<Row>(
        `select seq::text as seq, event_id, kind, target, ${epochMs("revoked_at")} as revoked_ms,
                ${epochMs("expires_at")} as expires_ms from revocation_events
          where seq > $1::bigint and expires_at > $2 order by revocation_events.seq limit $3`,
        [seq.toString(), new Date(nowMs), limit],
      );
      return rows.map(stored);
    },
    async head() {
      const [row] = await pg.sql<{ head: string }>(
        "select coalesce(max(seq), 0)::text as head from revocation_events",
      );
      return BigInt(row?.head ?? "0");
    },
    async prune(beforeMs, limit) {
      const rows = await pg.sql(
        `delete from revocation_events where seq in
           (select seq from revocation_events where expires_at < $1 order by expires_at limit $2) returning seq`,
        [new Date(beforeMs), limit],
      );
      return rows.length;
    },
  };
}
