import type { Pg } from "./sql.ts";

/** The PostgreSQL tables that hold values sealed with the key ring, one sealed column each. */
export const sealedTables = ["factors", "signing_keys", "service_secrets"] as const;
export type SealedTable = (typeof sealedTables)[number];

/** One stored sealed value: its row's id (factor id, signing key kid, secret name) and subject, if any. */
export interface SealedRow {
  id: string;
  /** The factor's subject (part of its binding); null in the other tables. */
  subject: string | null;
  sealed: Buffer;
}

/** Finds sealed values by the key that sealed them and swaps them one row at a time. */
export interface SealedRowStore {
  /**
   * Up to `limit` rows of `table`, in primary-key order after `after` (null: from the first), whose
   * sealed value was written with a key other than `keyId`.
   */
  batch(table: SealedTable, keyId: string, after: string | null, limit: number): Promise<SealedRow[]>;
  /**
   * Stores `sealed` (written with `keyId`) in the row, only if it still holds `expected`: a value
   * a replica wrote meanwhile is never overwritten. True if the row was changed.
   */
  reseal(table: SealedTable, id: string, expected: Buffer, sealed: Buffer, keyId: string): Promise<boolean>;
  /** How many rows of each table hold a value written with a key other than `keyId`. */
  countNotUnder(keyId: string): Promise<Record<SealedTable, number>>;
}

interface TableShape {
  /** The primary key and its SQL type. */
  key: string;
  keyType: "uuid" | "text";
  /** The sealed column. */
  sealed: string;
  /** The subject column, when the binding needs it. */
  subject?: string;
}

const shapes: Record<SealedTable, TableShape> = {
  factors: { key: "id", keyType: "uuid", sealed: "secret", subject: "subject" },
  signing_keys: { key: "kid", keyType: "text", sealed: "private_key" },
  service_secrets: { key: "name", keyType: "text", sealed: "sealed" },
};

// The key id is read from the value itself, not the key_id column: a sealed value starts with
// its format version, the id's length and the id, in clear (crypto/key-ring.ts).
const sealedUnder = (column: string) =>
  `(case when length(${column}) >= 2 then convert_from(substring(${column} from 3 for get_byte(${column}, 1)), 'UTF8') end)`;

export function createSealedRowStore(pg: Pg): SealedRowStore {
  const run = pg.sql;
  // Table and column names come from `shapes` above; only values are parameters.
  const notUnder = (s: TableShape) => `${s.sealed} is not null and ${sealedUnder(s.sealed)} <> $1`;
  return {
    async batch(table, keyId, after, limit) {
      const s = shapes[table];
      const rows = await run<{ id: string; subject: string | null; sealed: Buffer }>(
        `select ${s.key}::text as id, ${s.subject ?? "null::text"} as subject, ${s.sealed} as sealed
         from ${table} where ${notUnder(s)} and ($2::${s.keyType} is null or ${s.key} > $2::${s.keyType})
         order by ${s.key} limit $3`,
        [keyId, after, limit],
      );
      return rows;
    },
    async reseal(table, id, expected, sealed, keyId) {
      const s = shapes[table];
      const rows = await run(
        `update ${table} set ${s.sealed} = $1, key_id = $2 where ${s.key} = $3::${s.keyType} and ${s.sealed} = $4
         returning 1`,
        [sealed, keyId, id, expected],
      );
      return rows.length === 1;
    },
    async countNotUnder(keyId) {
      const counts = await Promise.all(
        sealedTables.map(async (table) => {
          const rows = await run<{ n: string }>(
            `select count(*) as n from ${table} where ${notUnder(shapes[table])}`,
            [keyId],
          );
          return [table, Number(rows[0]?.n ?? 0)] as const;
        }),
      );
      return Object.fromEntries(counts) as Record<SealedTable, number>;
    },
  };
}
