import { randomBytes } from "node:crypto";
import pg from "pg";

/** The server databases are created on by default: STEPGATE_TEST_DATABASE_URL (which `pnpm test`
 * sets to a throwaway cluster of its own when it is not given: test-stores.ts), else, for a test
 * file run alone, the machine's PostgreSQL as `postgres` on 127.0.0.1:5432 with trust auth. */
export const adminUrl =
  process.env.STEPGATE_TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

/** Options of `createTestDatabase`. */
export interface TestDatabaseOptions {
  /** The start of the database's name; 12 random hex digits follow. Lower-case letters, digits and
   * underscores, at most 51 characters. Default `stepgate_test_`. */
  namePrefix?: string;
}

/** A fresh database of its own. Every method rejects with the `pg` error when PostgreSQL does. */
export interface TestDatabase {
  /** The database's URL, for the replicas. */
  url: string;
  /** The database's name, `<namePrefix><12 random hex digits>`. */
  name: string;
  /** Runs `sql` in the database (on one connection, opened on the first call) and returns the rows. */
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  /** PIDs of the PostgreSQL processes working for this database: its client backends and the server's
   * own background processes (WAL writer, checkpointer, …), not other databases' backends. */
  serverPids(): Promise<number[]>;
  /** PostgreSQL's version string, e.g. `PostgreSQL 15.8 on x86_64-pc-linux-gnu, …`. */
  version(): Promise<string>;
  /** Closes the `query` connection and drops the database `with (force)`, ending whatever else is
   * still connected to it. */
  drop(): Promise<void>;
}

/**
 * Creates `<namePrefix><random>` on the server `adminUrl` points at (default: the exported
 * `adminUrl`), so no run depends on an earlier one; `drop()` removes it. Throws if `namePrefix` is not
 * a plain identifier; rejects with the `pg` error if the server cannot be reached or refuses.
 */
export async function createTestDatabase(
  serverUrl = adminUrl,
  options: TestDatabaseOptions = {},
): Promise<TestDatabase> {
  const namePrefix = options.namePrefix ?? "stepgate_test_";
  if (!/^[a-z_][a-z0-9_]{0,50}$/.test(namePrefix)) throw new Error(`bad database name prefix ${namePrefix}`);
  const name = `${namePrefix}${randomBytes(6).toString("hex")}`;
  const creator = await connect(serverUrl);
  try {
    await creator.query(`create database ${name}`);
  } finally {
    await creator.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  // Both opened on first use, so a database only handed to replicas has no extra backend.
  const user = lazyConnection(url.toString());
  const admin = lazyConnection(serverUrl);
  return {
    url: url.toString(),
    name,
    async query(sql, params = []) {
      return (await (await user.get()).query(sql, params)).rows;
    },
    async serverPids() {
      const { rows } = await (await admin.get()).query<{ pid: number }>(
        `select pid from pg_stat_activity
         where (datname = $1 and backend_type = 'client backend') or backend_type not in ('client backend', 'autovacuum worker', 'parallel worker')`,
        [name],
      );
      return rows.map((r) => r.pid);
    },
    async version() {
      const { rows } = await (await admin.get()).query<{ v: string }>("select version() as v");
      return rows[0]?.v ?? "unknown";
    },
    async drop() {
      // A query connection that never opened has nothing to close.
      await user.opened()?.then(
        (client) => client.end(),
        () => {},
      );
      const a = await admin.get();
      try {
        await a.query(`drop database if exists ${name} with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}

async function connect(connectionString: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString });
  // A test may stop the server: a dropped connection must fail its queries, not the process.
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** A connection opened by the first `get()`, and again by the next one after a failed attempt. */
function lazyConnection(connectionString: string) {
  let client: Promise<pg.Client> | undefined;
  return {
    get(): Promise<pg.Client> {
      client ??= connect(connectionString).catch((error: unknown) => {
        client = undefined;
        throw error;
      });
      return client;
    },
    opened: () => client,
  };
}
