import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { postgresBinDir } from "./binaries.ts";
import { missingStoreBinaries } from "./test-stores.ts";

describe("the test run's own stores", () => {
  it("name, in one line, every package a run without URLs would need and does not find", () => {
    const line = missingStoreBinaries({ PATH: "/nonexistent", STEPGATE_PG_BIN: "" });
    // On a machine with PostgreSQL under /usr/lib/postgresql, only Redis and HAProxy are missing.
    assert.ok(line !== undefined);
    assert.doesNotMatch(line, /\n/);
    assert.match(line, /redis-server \(Debian\/Ubuntu: apt-get install redis-server\)/);
    assert.match(line, /haproxy \(Debian\/Ubuntu: apt-get install haproxy\)/);
    if (postgresBinDir({ PATH: "/nonexistent" }) === undefined)
      assert.match(line, /apt-get install postgresql/);
  });

  it("need nothing for a store whose URL is given, and find what this machine has", () => {
    const given = missingStoreBinaries({
      PATH: "/nonexistent",
      STEPGATE_TEST_DATABASE_URL: "postgresql://postgres@127.0.0.1:5432/postgres",
      STEPGATE_TEST_REDIS_URL: "redis://127.0.0.1:6379",
    });
    assert.equal(given, "pnpm test needs haproxy (Debian/Ubuntu: apt-get install haproxy)");
    assert.equal(missingStoreBinaries(process.env), undefined);
  });
});
