import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { migrate, openDatabase } from "./database.ts";
import { migrationsPending } from "./pending-migrations.ts";
import { openPool, type ServingPool } from "./pool.ts";
import { sqlOn } from "./sql.ts";

// Dates, timestamps, intervals and arrays of them, as the stores read them.
const typed = `select now() as tz, localtimestamp as ts, current_date as d, interval '90 minutes' as i,
  array[now(), now()] as tzs, 42::int as n, 'x'::text as t`;

describe("serving pool: without the ORM, as the ORM's pool read rows", () => {
  let testDb: TestDatabase;
  let pool: ServingPool;
  before(async () => {
    testDb = await createTestDatabase();
    pool = openPool({ url: testDb.url, poolSize: 2, statementTimeoutMs: 2000 });
  });
  after(async () => {
    await pool.close();
    await testDb.drop();
  });

  it("finds migrations pending on an empty database and none once they are applied", async () => {
    assert.equal(await migrationsPending(pool.kysely), true);
    const orm = await openDatabase({ url: testDb.url, poolSize: 1 });
    try {
      await migrate(orm, testDb.url);
    } finally {
      await orm.close();
    }
    assert.equal(await migrationsPending(pool.kysely), false);
  });

  it("returns every column type as the ORM's pool does", async () => {
    const orm = await openDatabase({ url: testDb.url, poolSize: 1, statementTimeoutMs: 2000 });
    try {
      const [fromOrm] = await sqlOn(orm.em.getKysely() as never)<Record<string, unknown>>(typed);
      const [fromPool] = await sqlOn(pool.kysely)<Record<string, unknown>>(typed);
      assert.ok(fromOrm && fromPool);
      assert.equal(typeof fromPool.tz, "string");
      assert.ok(Array.isArray(fromPool.tzs) && typeof fromPool.tzs[0] === "string");
      // The clock moved between the two statements: compare the types, and the values that hold still.
      for (const key of Object.keys(fromOrm)) assert.equal(typeof fromPool[key], typeof fromOrm[key], key);
      assert.deepEqual(
        [fromPool.d, fromPool.i, fromPool.n, fromPool.t],
        [fromOrm.d, fromOrm.i, fromOrm.n, fromOrm.t],
      );
    } finally {
      await orm.close();
    }
  });

  it("bounds every statement by the timeout", async () => {
    await assert.rejects(sqlOn(pool.kysely)("select pg_sleep(5)"), /statement timeout|timeout/i);
  });
});
