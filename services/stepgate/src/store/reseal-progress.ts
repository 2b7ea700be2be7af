import type { SealedTable } from "./sealed-rows.ts";
import type { Pg } from "./sql.ts";

/** How far the re-seal job got in one table, moving its rows to the key `keyId`. */
export interface ResealCursor {
  table: SealedTable;
  keyId: string;
  /** The last row passed, in primary-key order; null: none yet. */
  after: string | null;
  /** The pass reached the table's end. */
  complete: boolean;
  /** Rows re-sealed to `keyId` so far, across runs. */
  resealed: number;
}

/** The re-seal job's progress in PostgreSQL, one row per table, so a stopped job resumes. */
export interface ResealProgressStore {
  /** The cursor of `table` towards `keyId`; a fresh one if none is stored or it was towards another key. */
  load(table: SealedTable, keyId: string): Promise<ResealCursor>;
  save(cursor: ResealCursor): Promise<void>;
}

export function createResealProgressStore(pg: Pg): ResealProgressStore {
  const run = pg.sql;
  return {
    async load(table, keyId) {
      const rows = await run<{ after: string | null; complete: boolean; resealed: string }>(
        "select after, complete, resealed from reseal_progress where target = $1 and key_id = $2",
        [table, keyId],
      );
      const row = rows[0];
      return row
        ? { table, keyId, after: row.after, complete: row.complete, resealed: Number(row.resealed) }
        : { table, keyId, after: null, complete: false, resealed: 0 };
    },
    async save(c) {
      await run(
        `insert into reseal_progress (target, key_id, after, complete, resealed, updated_at)
         values ($1, $2, $3, $4, $5, now())
         on conflict (target) do update set key_id = excluded.key_id, after = excluded.after,
           complete = excluded.complete, resealed = excluded.resealed, updated_at = now()`,
        [c.table, c.keyId, c.after, c.complete, c.resealed],
      );
    },
  };
}
