import { Kysely, PostgresDialect } from "kysely";
import pg from "pg";

/** The serving connection pool: Kysely over `pg`, without the ORM (store/database.ts migrates). */
export interface ServingPool {
  kysely: Kysely<unknown>;
  close(): Promise<void>;
}

export interface PoolOptions {
  url: string;
  /** Connections in the pool. */
  poolSize: number;
  /** Bounds every statement (statement_timeout and the driver's query timeout) and every
   * connection attempt, in ms. */
  statementTimeoutMs: number;
  /** Told when an idle or checked-out connection fails (the query in flight rejects on its own). */
  onConnectionError?: (error: Error) => void;
}

// Dates, timestamps and intervals stay text, as the ORM's pool returned them (the stores parse them).
const rawTextTypes = [1082, 1114, 1184, 1186];
const rawTextArrays = [1182, 1115, 1185, 1187];

/**
 * A pool as MikroORM opened it for the stores (same type parsers, timeouts and error handling),
 * without loading MikroORM: about 9 MiB less per replica, which only migrates when a migration is
 * pending (store/stores.ts).
 */
export function openPool(options: PoolOptions): ServingPool {
  const types = new pg.TypeOverrides();
  // text[]: parses an array literal into its elements as text.
  const textArray = pg.types.getTypeParser(1009 as Parameters<typeof pg.types.getTypeParser>[0]);
  for (const oid of rawTextTypes) types.setTypeParser(oid, (text: string) => text);
  for (const oid of rawTextArrays) types.setTypeParser(oid, textArray);
  const pool = new pg.Pool({
    ...connectionOf(options.url),
    max: options.poolSize,
    min: 0,
    types,
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.statementTimeoutMs,
    connectionTimeoutMillis: options.statementTimeoutMs,
    keepAlive: true,
  });
  // An 'error' event with no listener would end the process: a dropped connection is logged only.
  const report = (error: Error) => options.onConnectionError?.(error);
  pool.on("connect", (client) => client.on("error", report));
  pool.on("error", report);
  const kysely = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
  return { kysely, close: () => kysely.destroy() };
}

/** Host, port, user, password and database from the URL, read as MikroORM read them (query
 * parameters ignored). */
function connectionOf(url: string) {
  const u = new URL(url);
  return {
    host: decodeURIComponent(u.hostname),
    port: Number(u.port) || 5432,
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
    database: decodeURIComponent(u.pathname).replace(/^\//, ""),
  };
}
