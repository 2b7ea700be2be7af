import { createTestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl } from "@stepgate/testkit/test-redis-prefix";
import { migrate, openDatabase } from "../database.ts";
import { hotStoreContract } from "./hot-store-contract.ts";
import { createMemoryHotStore } from "./memory-hot-store.ts";
import { createPostgresHotStore } from "./postgres-hot-store.ts";
import { createRedisHotStore } from "./redis-hot-store.ts";

// One contract, three stores: what a use case may rely on does not depend on where state lives.
hotStoreContract("memory", async () => ({ store: createMemoryHotStore(), cleanUp: async () => {} }));

hotStoreContract("redis", async () => {
  const prefix = createTestRedisPrefix();
  return {
    store: createRedisHotStore({ url: redisUrl, prefix: prefix.prefix }),
    cleanUp: () => prefix.clean().then(() => {}),
  };
});

hotStoreContract("postgresql", async () => {
  const testDb = await createTestDatabase();
  const db = await openDatabase({ url: testDb.url, poolSize: 4 });
  await migrate(db, testDb.url);
  return {
    store: createPostgresHotStore(db),
    async cleanUp() {
      await db.close();
      await testDb.drop();
    },
  };
});
