import { CompiledQuery, type Kysely } from "kysely";
import type { Database } from "./database.ts";

/** Runs one statement with `?` placeholders; returns its rows. */
export type Sql = <T = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<T[]>;

/**
 * Statements run as real bind parameters ($1, $2, ...): values travel apart from the text, so no
 * subject, hash or sealed secret ever appears in query text, logs or traces. (MikroORM's
 * `execute` would inline them.) Uses the Kysely instance MikroORM itself runs on.
 */
export function sqlOn(kysely: Kysely<unknown>): Sql {
  return async <T>(text: string, params: readonly unknown[] = []) => {
    let n = 0;
    const numbered = text.replace(/\?/g, () => `$${++n}`);
    const result = await kysely.executeQuery(CompiledQuery.raw(numbered, [...params]));
    return result.rows as T[];
  };
}

/** The database's Kysely instance: the ORM's pool and connections. */
export function kyselyOf(db: Database): Kysely<unknown> {
  return db.em.getKysely() as unknown as Kysely<unknown>;
}

export const sqlFor = (db: Database): Sql => sqlOn(kyselyOf(db));

/** Runs `work` in one transaction, with its own Sql. */
export function inTransaction<T>(db: Database, work: (sql: Sql) => Promise<T>): Promise<T> {
  return kyselyOf(db)
    .transaction()
    .execute((trx) => work(sqlOn(trx)));
}
