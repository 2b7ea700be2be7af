import type { Kysely } from "kysely";
import { migrationNames, migrationsTable } from "./migration-names.ts";
import { sqlOn } from "./sql.ts";

/**
 * Whether any migration is not applied yet, read without the ORM; true when the migrations table
 * does not exist. Rejects with the driver's error when PostgreSQL cannot be reached.
 */
export async function migrationsPending(kysely: Kysely<unknown>): Promise<boolean> {
  const sql = sqlOn(kysely);
  const [table] = await sql<{ found: string | null }>("select to_regclass($1) as found", [migrationsTable]);
  if (!table?.found) return true;
  const rows = await sql<{ name: string }>(`select name from ${migrationsTable}`);
  const applied = new Set(rows.map((r) => r.name));
  return migrationNames.some((name) => !applied.has(name));
}
