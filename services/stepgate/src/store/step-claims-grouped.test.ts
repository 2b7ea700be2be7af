// TOTP step claims grouped into one statement under concurrency, on a real PostgreSQL: still
// once per step (RFC 6238 5.2), a retry still its own, and two replicas' batches never deadlock.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { type Database, migrate, openDatabase } from "./database.ts";
import { createDependency } from "./dependency.ts";
import { createFactorStore, type FactorStore } from "./factor-store.ts";
import { createPg, type Pg } from "./sql.ts";

const bounds = { callTimeoutMs: 5000, failureThreshold: 3, halfOpenAfterMs: 1000 };

/** A Pg that counts the statements it runs. */
function counted(pg: Pg): { pg: Pg; statements: () => number } {
  let n = 0;
  return {
    pg: {
      ...pg,
      sql: (text, params) => {
        n++;
        return pg.sql(text, params);
      },
    },
    statements: () => n,
  };
}

describe("grouped TOTP step claims (real PostgreSQL)", () => {
  let testDb: TestDatabase;
  let db: Database;
  let pg: Pg;
  let store: FactorStore;
  before(async () => {
    testDb = await createTestDatabase();
    db = await openDatabase({ url: testDb.url, poolSize: 4, statementTimeoutMs: 5000 });
    await migrate(db, testDb.url);
    pg = createPg(db, createDependency("postgresql", bounds));
    store = createFactorStore(pg);
  });
  after(async () => {
    await db.close();
    await testDb.drop();
  });

  /** `n` active TOTP factors, each with step 1 claimed by its confirmation. */
  const activeFactors = async (n: number) => {
    const now = new Date();
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const id = randomUUID();
      const subject = `user-${id}`;
      await store.insertTotp({
        id,
        subject,
        label: "phone",
        secret: Buffer.alloc(48, 1),
        keyId: "k1",
        createdAt: now,
        confirmBy: new Date(now.getTime() + 60_000),
        authorizedBy: { kind: "first_factor" },
      });
      assert.equal(
        await store.activate({ subject, factorId: id, step: 1, now, onlyFirst: true }),
        "activated",
      );
      ids.push(id);
    }
    return ids;
  };

  it("claims many factors' steps in a few statements, each once", async () => {
    const ids = await activeFactors(40);
    const { pg: countingPg, statements } = counted(pg);
    const grouped = createFactorStore(countingPg);
    const now = new Date();
    const results = await Promise.all(ids.map((id) => grouped.claimStep(id, 2, `claim-${id}`, now)));
    assert.deepEqual(new Set(results), new Set(["claimed"]));
    assert.ok(statements() <= 3, `40 concurrent claims took ${statements()} statements`);
    const again = await Promise.all(ids.map((id) => grouped.claimStep(id, 2, `other-${id}`, now)));
    assert.deepEqual(new Set(again), new Set(["replayed"]));
  });

  it("gives a step to one claim of many racing, a retry its own claim, an older step to none", async () => {
    const [id = ""] = await activeFactors(1);
    const now = new Date();
    const racing = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.claimStep(id, 5, `claim-${i}`, now)),
    );
    assert.equal(racing.filter((r) => r === "claimed").length, 1, racing.join(","));
    const winner = racing.indexOf("claimed");
    const retries = await Promise.all([
      store.claimStep(id, 5, `claim-${winner}`, now),
      store.claimStep(id, 5, `claim-${winner}`, now),
    ]);
    assert.deepEqual(retries, ["claimed", "claimed"]);
    assert.equal(await store.claimStep(id, 4, "late", now), "replayed");
    assert.equal(await store.claimStep(randomUUID(), 5, "nobody", now), "removed");
  });

  it("never deadlocks two replicas' batches over the same factors, and each step goes once", async () => {
    const ids = await activeFactors(12);
    const replicas = [createFactorStore(pg), createFactorStore(pg)];
    const now = new Date();
    for (let step = 10; step < 16; step++) {
      // Each replica claims every factor's step, in opposite orders, under its own claims.
      const results = await Promise.all(
        replicas.flatMap((replica, r) =>
          (r === 0 ? ids : [...ids].reverse()).map(async (id) => ({
            id,
            result: await replica.claimStep(id, step, `r${r}-${step}`, now),
          })),
        ),
      );
      for (const id of ids) {
        const claimed = results.filter((x) => x.id === id && x.result === "claimed");
        assert.equal(claimed.length, 1, `factor ${id} step ${step}`);
      }
    }
  });
});
