import { randomBytes } from "node:crypto";
import pg from "pg";

/** The server tests create their databases on (trust auth on this machine and in CI). */
export const adminUrl =
  process.env.STEPGATE_TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";

export interface TestDatabase {
  url: string;
  query<T = Record<string, unknown>>(sql: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh, uniquely named database, dropped by `drop()`: no run depends on an earlier one. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `stepgate_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const client = new pg.Client({ connectionString: url.toString() });
  await client.connect();
  return {
    url: url.toString(),
    async query(sql, params = []) {
      return (await client.query(sql, params)).rows;
    },
    async drop() {
      await client.end();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`drop database if exists ${name} with (force)`);
      await a.end();
    },
  };
}
