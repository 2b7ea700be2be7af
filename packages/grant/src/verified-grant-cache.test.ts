import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GrantClaims } from "./grant-claims.ts";
import { createVerifiedGrantCache } from "./verified-grant-cache.ts";

const claims = { jti: "grant" } as GrantClaims;

describe("createVerifiedGrantCache", () => {
  it("holds at most size tokens, dropping the oldest", () => {
    const cache = createVerifiedGrantCache(2);
    cache.set("a", claims, "k1", 1000);
    cache.set("b", claims, "k1", 1000);
    cache.set("c", claims, "k1", 1000);
    assert.equal(cache.get("a", 0), undefined);
    assert.equal(cache.get("b", 0), claims);
    assert.equal(cache.get("c", 0), claims);
  });

  it("drops a token at its deadline", () => {
    const cache = createVerifiedGrantCache(2);
    cache.set("a", claims, "k1", 1000);
    assert.equal(cache.get("a", 999), claims);
    assert.equal(cache.get("a", 1000), undefined);
    assert.equal(cache.get("a", 0), undefined, "gone, not just hidden");
  });

  it("forgets what a dropped key verified", () => {
    const cache = createVerifiedGrantCache(4);
    cache.set("a", claims, "k1", 1000);
    cache.set("b", claims, "k2", 1000);
    cache.dropKid("k1");
    assert.equal(cache.get("a", 0), undefined);
    assert.equal(cache.get("b", 0), claims);
  });

  it("caches nothing with size 0", () => {
    const cache = createVerifiedGrantCache(0);
    cache.set("a", claims, "k1", 1000);
    assert.equal(cache.get("a", 0), undefined);
  });
});
