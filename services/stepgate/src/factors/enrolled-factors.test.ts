import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { parseKeyRing } from "../crypto/key-ring.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Enrolled } from "../domain/factor.ts";
import { createFactorCache } from "../store/factor-cache.ts";
import { createMemoryHotStore } from "../store/hot/memory-hot-store.ts";
import { createEnrolledFactors } from "./enrolled-factors.ts";

const keyRing = parseKeyRing(`unit:${randomBytes(32).toString("base64")}`);
const withTotp = (version: number): Enrolled => ({
  methods: new Set(["totp"]),
  totp: [{ id: "f1", sealed: "c2VhbGVk" }],
  passkeys: [],
  version,
});
const none = (version: number): Enrolled => ({ methods: new Set(), totp: [], passkeys: [], version });

/** A factor store whose answer the test sets, or that is down. */
function factorStore(initial: Enrolled) {
  const state = { current: initial as Enrolled | "down" };
  return {
    state,
    store: {
      enrolled: async () => {
        if (state.current === "down")
          throw new DependencyUnavailableError("postgresql", "DEPENDENCY_UNAVAILABLE", 500);
        return state.current;
      },
    },
  };
}

describe("enrolled factors with the encrypted cache", () => {
  it("answers from the cache while PostgreSQL is down, and fails when nothing is cached", async () => {
    const hot = createMemoryHotStore();
    const { state, store } = factorStore(withTotp(1));
    const enrolled = createEnrolledFactors({
      factors: store,
      cache: createFactorCache(hot),
      keyRing,
      cacheTtlMs: 60_000,
    });
    assert.deepEqual(await enrolled.read("alice"), withTotp(1));
    state.current = "down";
    assert.deepEqual(await enrolled.read("alice"), withTotp(1));
    await assert.rejects(enrolled.read("bob"), DependencyUnavailableError);
  });

  it("keeps the secret sealed and bound to its subject", async () => {
    const hot = createMemoryHotStore();
    const { state, store } = factorStore(withTotp(1));
    const cache = createFactorCache(hot);
    const enrolled = createEnrolledFactors({ factors: store, cache, keyRing, cacheTtlMs: 60_000 });
    await enrolled.read("alice");
    const cached = await cache.get("alice");
    assert.ok(cached && !cached.sealed.includes("c2VhbGVk"), "the cache holds only ciphertext");
    // Alice's entry copied under Bob's key cannot be opened as Bob's.
    await cache.put("bob", cached.version, cached.sealed, 60_000);
    state.current = "down";
    await assert.rejects(enrolled.read("bob"), DependencyUnavailableError);
  });

  it("never brings a removed factor back: an older read cannot overwrite a newer one", async () => {
    const hot = createMemoryHotStore();
    const { state, store } = factorStore(withTotp(1));
    const enrolled = createEnrolledFactors({
      factors: store,
      cache: createFactorCache(hot),
      keyRing,
      cacheTtlMs: 60_000,
    });
    const staleReader = createEnrolledFactors({
      factors: { enrolled: async () => withTotp(1) },
      cache: createFactorCache(hot),
      keyRing,
      cacheTtlMs: 60_000,
    });
    state.current = none(2);
    await enrolled.refresh("alice");
    await staleReader.read("alice");
    state.current = "down";
    assert.deepEqual(await enrolled.read("alice"), none(2));
  });
});
