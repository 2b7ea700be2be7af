import pg from "pg";

/** Row writes: inserted, updated, deleted. */
export interface RowWrites {
  inserted: number;
  updated: number;
  deleted: number;
}

/** PostgreSQL's counters for one database at one moment (pg_stat_database, pg_stat_user_tables). */
export interface PgCounters {
  /** Transactions committed and rolled back in the database, by every backend. */
  commits: number;
  rollbacks: number;
  /** Row writes in the database, catalogs included. */
  writes: RowWrites;
  /** Row writes by table (the database's own tables). */
  tables: Record<string, RowWrites>;
  /** The server's WAL position in bytes (pg_current_wal_lsn): every database's writes, not only this one's. */
  walBytes: number;
}

/** A connection of the bench's own to the measured database, for its statistics. */
export interface PgProbe {
  /** The counters now, as far as backends have flushed them: a backend reports at most once a second
   * (PGSTAT_MIN_INTERVAL), so wait 1.5 s after the work before calling. */
  counters(): Promise<PgCounters>;
  /** What happened between two snapshots, without the probe's own transaction (one per snapshot). */
  between(before: PgCounters, after: PgCounters): PgCounters;
  close(): Promise<void>;
}

// One statement, so one transaction; a new transaction reads fresh statistics (the snapshot that
// stats_fetch_consistency = cache keeps lasts one transaction), so no pg_stat_clear_snapshot().
const query = `
  select d.xact_commit::float8 as commits, d.xact_rollback::float8 as rollbacks,
         d.tup_inserted::float8 as inserted, d.tup_updated::float8 as updated, d.tup_deleted::float8 as deleted,
         (pg_current_wal_lsn() - '0/0')::float8 as wal_bytes,
         (select coalesce(json_object_agg(relname, json_build_array(n_tup_ins, n_tup_upd, n_tup_del)), '{}')
            from pg_stat_user_tables) as tables
  from pg_stat_database d where d.datname = current_database()`;

interface Row {
  commits: number;
  rollbacks: number;
  inserted: number;
  updated: number;
  deleted: number;
  wal_bytes: number;
  tables: Record<string, [number, number, number]>;
}

const minus = (a: RowWrites, b: RowWrites | undefined): RowWrites => ({
  inserted: a.inserted - (b?.inserted ?? 0),
  updated: a.updated - (b?.updated ?? 0),
  deleted: a.deleted - (b?.deleted ?? 0),
});

/** Opens a probe on the database at `databaseUrl`. */
export async function openPgProbe(databaseUrl: string): Promise<PgProbe> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  return {
    async counters() {
      const row = (await client.query<Row>(query)).rows[0];
      if (!row) throw new Error("pg_stat_database has no row for the database");
      const tables: Record<string, RowWrites> = {};
      for (const [name, [inserted, updated, deleted]] of Object.entries(row.tables)) {
        tables[name] = { inserted, updated, deleted };
      }
      const { commits, rollbacks, inserted, updated, deleted } = row;
      return { commits, rollbacks, writes: { inserted, updated, deleted }, tables, walBytes: row.wal_bytes };
    },
    between(before, after) {
      const tables: Record<string, RowWrites> = {};
      for (const [name, writes] of Object.entries(after.tables)) {
        const made = minus(writes, before.tables[name]);
        if (made.inserted || made.updated || made.deleted) tables[name] = made;
      }
      return {
        // The `before` snapshot's own transaction is flushed inside the window.
        commits: after.commits - before.commits - 1,
        rollbacks: after.rollbacks - before.rollbacks,
        writes: minus(after.writes, before.writes),
        tables,
        walBytes: after.walBytes - before.walBytes,
      };
    },
    close: () => client.end(),
  };
}
