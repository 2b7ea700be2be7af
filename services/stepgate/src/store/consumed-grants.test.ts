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
});
