import { CompiledQuery, type Kysely } from "kysely";
import type { Database } from "./database.ts";
import type { Dependency } from "./dependency.ts";
import type { ServingPool } from "./pool.ts";

/** Runs one statement with PostgreSQL's own placeholders ($1, $2, ...); returns its rows. */
export type Sql = <T = Record<string, unknown>>(text: string, params?: readonly unknown[]) => Promise<T[]>;

/**
 * Statements run as real bind parameters ($1, $2, ...): values travel apart from the text, so no
 * subject, hash or sealed secret ever appears in query text, logs or traces. (MikroORM's
 * `execute` would inline them.) Uses the Kysely instance MikroORM itself runs on.
 */
export function sqlOn(kysely: Kysely<unknown>): Sql {
  return async <T>(text: string, params: readonly unknown[] = []) => {
    const result = await kysely.executeQuery(CompiledQuery.raw(text, [...params]));
    return result.rows as T[];
  };
}

/** The database's Kysely instance: the serving pool's, or the ORM's pool and connections. */
export function kyselyOf(db: Database | ServingPool): Kysely<unknown> {
  return "kysely" in db ? db.kysely : (db.em.getKysely() as unknown as Kysely<unknown>);
}

/** PostgreSQL as the stores use it: every statement and transaction runs through its circuit breaker. */
export interface Pg {
  /** One statement, bounded by the dependency's call timeout. */
  sql: Sql;
  /** `work` in one transaction with its own Sql, bounded as one call (committed, or rolled back on error). */
  transaction<T>(work: (sql: Sql) => Promise<T>): Promise<T>;
  /** `select 1` as the health probe: the trial call of an open circuit (see Dependency.probe). */
  probe(): Promise<void>;
}

/** The database behind `dependency`'s breaker and timeout (see store/dependency.ts). */
export function createPg(db: Database | ServingPool, dependency: Dependency): Pg {
  const kysely = kyselyOf(db);
  const raw = sqlOn(kysely);
  return {
    sql: <T>(text: string, params?: readonly unknown[]) => dependency.run(() => raw<T>(text, params)),
    transaction: (work) => dependency.run(() => kysely.transaction().execute((trx) => work(sqlOn(trx)))),
    probe: () => dependency.probe(() => raw("select 1")).then(() => {}),
  };
}

/** A PostgreSQL error's SQLSTATE, e.g. 40P01 for a deadlock; undefined for other errors. */
export const pgErrorCode = (error: unknown) =>
  typeof error === "object" && error !== null && "code" in error ? String(error.code) : undefined;

/**
 * `batch` (one statement over many rows, e.g. group-committed claims), settled item by item should
 * PostgreSQL end it as a deadlock (40P01): a plan may lock rows in another order than asked, and
 * one by one still decides every item. Items must be safe to run again (claims recognise their own).
 */
export function oneByOneOnDeadlock<I, O>(batch: (items: I[]) => Promise<O[]>): (items: I[]) => Promise<O[]> {
  const settle = (items: I[]): Promise<O[]> =>
    batch(items).catch((error: unknown) => {
      if (items.length <= 1 || pgErrorCode(error) !== "40P01") throw error;
      return Promise.all(items.map((item) => settle([item]).then(([output]) => output as O)));
    });
  return settle;
}
