import { createTestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl } from "@stepgate/testkit/test-redis-prefix";
import { migrate, openDatabase } from "../database.ts";
import { createDependency } from "../dependency.ts";
import { createPg } from "../sql.ts";
import { createFailoverHotStore } from "./failover-hot-store.ts";
import type { HotStore } from "./hot-store.ts";
import { hotStoreContract } from "./hot-store-contract.ts";
import { createMemoryHotStore } from "./memory-hot-store.ts";
import { createPostgresHotStore } from "./postgres-hot-store.ts";
import { createRedisHotStore } from "./redis-hot-store.ts";

const bounds = { callTimeoutMs: 1000, failureThreshold: 3, halfOpenAfterMs: 1000 };

async function postgresHotStore(): Promise<{ store: HotStore; cleanUp: () => Promise<void> }> {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ url: testDb.url, poolSize: 4, statementTimeoutMs: 2000 });
  await migrate(db, testDb.url);
  return {
    store: createPostgresHotStore(createPg(db, createDependency("postgresql", bounds))),
    async cleanUp() {
      await db.close();
      await testDb.drop();
    },
  };
}

// One contract, every store: what a use case may rely on does not depend on where state lives.
hotStoreContract("memory", async () => ({ store: createMemoryHotStore(), cleanUp: async () => {} }));

hotStoreContract("redis", async () => {
  const prefix = createTestRedisPrefix();
  const store = createRedisHotStore({
    target: { kind: "url", url: redisUrl },
    prefix: prefix.prefix,
    dependency: createDependency("redis", bounds),
    connectTimeoutMs: 2000,
  });
  await store.ready(2000);
  return { store, cleanUp: () => prefix.clean().then(() => {}) };
});

hotStoreContract("postgresql", postgresHotStore);

// Redis refuses every connection: each call fails over to PostgreSQL, then the circuit opens.
hotStoreContract("failover, with redis unreachable", async () => {
  const fallback = await postgresHotStore();
  const redisDependency = createDependency("redis", bounds);
  const primary = createRedisHotStore({
    target: { kind: "url", url: "redis://127.0.0.1:1" },
    prefix: "unreachable:",
    dependency: redisDependency,
    connectTimeoutMs: 200,
  });
  const store = createFailoverHotStore({
    primary,
    primaryDependency: redisDependency,
    fallback: fallback.store,
    resync: async () => {},
  });
  return {
    store,
    async cleanUp() {
      await fallback.store.close();
      await fallback.cleanUp();
    },
  };
});
