import { randomBytes } from "node:crypto";
import pg from "pg";

export interface BenchDatabase {
  /** The fresh database's URL, for the replicas and the seeding. */
  url: string;
  name: string;
  /** PIDs of the PostgreSQL processes working for this run: its client backends and the server's
   * own background processes (WAL writer, checkpointer, …), not other databases' backends. */
  serverPids(): Promise<number[]>;
  /** PostgreSQL's version string. */
  version(): Promise<string>;
  drop(): Promise<void>;
}

/** Creates `stepgate_bench_<random>` on the server `adminUrl` points at; `drop()` removes it. */
export async function createBenchDatabase(adminUrl: string): Promise<BenchDatabase> {
  const name = `stepgate_bench_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } catch (error) {
    await admin.end();
    throw error;
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async serverPids() {
      const { rows } = await admin.query<{ pid: number }>(
        `select pid from pg_stat_activity
         where (datname = $1 and backend_type = 'client backend') or backend_type not in ('client backend', 'autovacuum worker', 'parallel worker')`,
        [name],
      );
      return rows.map((r) => r.pid);
    },
    async version() {
      const { rows } = await admin.query<{ v: string }>("select version() as v");
      return rows[0]?.v ?? "unknown";
    },
    async drop() {
      try {
        await admin.query(`drop database if exists ${name} with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}
