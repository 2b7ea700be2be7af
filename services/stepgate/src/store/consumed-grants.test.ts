import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createConsumedGrants } from "./consumed-grants.ts";
import { createMemoryHotStore } from "./hot/memory-hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

describe("consumed grants", () => {
  it("spends a grant once", async () => {
    const grants = createConsumedGrants(createMemoryHotStore());
    assert.deepEqual(await Promise.all([grants.consume("jti-1", 60_000), grants.consume("jti-1", 60_000)]), [
      true,
      false,
    ]);
    assert.equal(await grants.consume("jti-2", 60_000), true);
  });

  it("keeps a grant spent under the key older releases wrote (rolling upgrade)", async () => {
    const hot = createMemoryHotStore();
    await hot.set(hotKeys.legacyConsumedGrant("jti-old"), "1", 60_000);
    assert.equal(await createConsumedGrants(hot).consume("jti-old", 60_000), false);
  });

  it("answers a retried spend by the same spender as the first, and no one else", async () => {
    const grants = createConsumedGrants(createMemoryHotStore());
    assert.equal(await grants.consume("jti-3", 60_000, "spender-a"), true);
    assert.equal(await grants.consume("jti-3", 60_000, "spender-a"), true, "the retry");
    assert.equal(await grants.spentBy("jti-3", "spender-a"), true);
    assert.equal(await grants.consume("jti-3", 60_000, "spender-b"), false);
    assert.equal(await grants.consume("jti-3", 60_000), false);
    assert.equal(await grants.spentBy("jti-3", "spender-b"), false);
    assert.equal(await grants.consume("jti-4", 60_000), true);
    assert.equal(await grants.consume("jti-4", 60_000, "1"), false, "a key-less spend is no one's");
  });
});
