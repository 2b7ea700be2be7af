import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { HotStore } from "./hot-store.ts";

/** How a contract run gets its store: a fresh one, and what to do after the run. */
export interface HotStoreUnderTest {
  store: HotStore;
  cleanUp(): Promise<void>;
}

/**
 * The behaviour every hot store must have, as node:test cases: values with expiry, set-if-absent,
 * atomic counters under concurrency (fixed and sliding expiry), the attempt pair, ttl and delete.
 * Expiry is checked with real time: each case waits at most about 1.5 s.
 */
export function hotStoreContract(name: string, open: () => Promise<HotStoreUnderTest>): void {
  describe(`hot store contract: ${name}`, () => {
    let underTest: HotStoreUnderTest;
    let hot: HotStore;
    // Keys unique to the run, so a shared Redis or table holds no earlier run's state.
    const key = (k: string) => `contract:${randomBytes(4).toString("hex")}:${k}`;
    before(async () => {
      underTest = await open();
      hot = underTest.store;
    });
    after(async () => {
      await underTest.store.close();
      await underTest.cleanUp();
    });

    it("gets what was set, null for what was not, and forgets it after its ttl", async () => {
      const [a, b] = [key("a"), key("b")];
      await hot.set(a, "one", 150);
      assert.equal(await hot.get(a), "one");
      assert.deepEqual(await hot.getMany([a, b, a]), ["one", null, "one"]);
      assert.deepEqual(await hot.getMany([]), []);
      await sleep(250);
      assert.equal(await hot.get(a), null);
    });

    it("sets if absent exactly once among racing calls, and again once the key expired", async () => {
      const k = key("nx");
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) => hot.setIfAbsent(k, `v${i}`, 150)),
      );
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.equal(await hot.get(k), `v${winner}`);
      await sleep(250);
      assert.equal(await hot.setIfAbsent(k, "later", 1000), true);
    });

    it("counts atomically under concurrency; the ttl starts at the first increment", async () => {
      const k = key("count");
      const counts = await Promise.all(Array.from({ length: 25 }, () => hot.increment(k, 300)));
      assert.deepEqual(
        [...counts].sort((x, y) => x - y),
        Array.from({ length: 25 }, (_, i) => i + 1),
      );
      const ttl = await hot.ttl(k);
      assert.ok(ttl > 0 && ttl <= 300, `ttl ${ttl}`);
      await sleep(400);
      assert.equal(await hot.increment(k, 300), 1, "a lapsed counter starts again");
    });

    it("a sliding counter lasts its ttl from the latest increment", async () => {
      const k = key("sliding");
      // Each gap (600 ms) is well inside the ttl (1000 ms), and the whole run is well past it.
      await hot.increment(k, 1000, true);
      await sleep(600);
      await hot.increment(k, 1000, true);
      await sleep(600);
      assert.equal(await hot.increment(k, 1000, true), 3, "still counting 1200 ms after the first");
      const fixed = key("fixed");
      await hot.increment(fixed, 300);
      await sleep(200);
      await hot.increment(fixed, 300);
      await sleep(200);
      assert.equal(await hot.increment(fixed, 300), 1, "a fixed counter lapsed 300 ms after its first");
    });

    it("moves the second counter of a pair only while the first is within its limit", async () => {
      const [first, second] = [key("first"), key("second")];
      const pairs = await Promise.all(
        Array.from({ length: 10 }, () =>
          hot.incrementBoth(
            { key: first, ttlMs: 5000, limit: 4 },
            { key: second, ttlMs: 5000, limit: 100, sliding: true },
          ),
        ),
      );
      const firsts = pairs.map(([a]) => a ?? 0);
      assert.deepEqual(
        firsts.sort((x, y) => x - y),
        Array.from({ length: 10 }, (_, i) => i + 1),
      );
      assert.equal(pairs.filter(([, b]) => b !== undefined).length, 4);
      assert.equal(pairs.filter(([a, b]) => (a ?? 0) > 4 && b !== undefined).length, 0);
      assert.equal(await hot.increment(second, 5000), 5);
    });

    it("counts nothing while the second of a pair holds its limit, nor moves its expiry", async () => {
      const [first, second] = [key("gated-first"), key("gated-second")];
      const pair = () =>
        hot.incrementBoth(
          { key: first, ttlMs: 5000, limit: 100 },
          { key: second, ttlMs: 1500, limit: 3, sliding: true },
        );
      const racing = await Promise.all(Array.from({ length: 8 }, pair));
      const through = racing.filter(([a]) => a !== undefined).map(([, b]) => b);
      assert.deepEqual(
        through.sort((x, y) => (x ?? 0) - (y ?? 0)),
        [1, 2, 3],
        "the gate let exactly three through",
      );
      for (const [a, b] of racing)
        if (a === undefined) assert.equal(b, 3, "a refused try sees the gate's count");
      const before = await hot.ttl(second);
      await sleep(300);
      assert.deepEqual(await pair(), [undefined, 3], "held at the gate: nothing counted");
      const after = await hot.ttl(second);
      assert.ok(after <= before - 250, `expiry not moved: ${before} ms, then ${after} ms`);
    });

    it("decrements a counter without going below zero or creating it", async () => {
      const [k, absent] = [key("dec"), key("dec-absent")];
      await hot.increment(k, 5000);
      await hot.increment(k, 5000);
      await hot.decrement(k);
      assert.equal(await hot.increment(k, 5000), 2);
      for (let i = 0; i < 4; i++) await hot.decrement(k);
      assert.equal(await hot.increment(k, 5000), 1);
      await hot.decrement(absent);
      assert.equal(await hot.get(absent), null);
      assert.equal(await hot.ttl(absent), 0);
    });

    it("raises a counter or a numeric value and never lowers it", async () => {
      const [counter, value] = [key("raise-counter"), key("raise-value")];
      await hot.increment(counter, 5000);
      await hot.raise(counter, 9, 5000);
      assert.equal(await hot.increment(counter, 5000), 10);
      await hot.raise(counter, 3, 5000);
      assert.equal(await hot.increment(counter, 5000), 11);
      await hot.raise(value, 1_700_000_000_000, 5000);
      assert.equal(Number(await hot.get(value)), 1_700_000_000_000);
      await hot.raise(value, 5, 5000);
      assert.equal(Number(await hot.get(value)), 1_700_000_000_000);
    });

    it("keeps the highest version of a versioned entry", async () => {
      const k = key("versioned");
      assert.equal(await hot.setVersioned(k, 2, "two", 5000), true);
      assert.equal(await hot.setVersioned(k, 1, "one", 5000), false);
      assert.equal(await hot.get(k), "2:two");
      assert.equal(await hot.setVersioned(k, 2, "two again", 5000), true);
      assert.equal(await hot.setVersioned(k, 3, "three", 5000), true);
      assert.equal(await hot.get(k), "3:three");
    });

    it("advances a marker once per position among racing owners; the owner's retry holds it", async () => {
      const k = key("advance");
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => hot.advance(k, 100, `owner${i}`, 5000)),
      );
      assert.equal(results.filter((r) => r === "advanced").length, 1);
      const winner = results.indexOf("advanced");
      assert.equal(await hot.advance(k, 100, `owner${winner}`, 5000), "held");
      assert.equal(await hot.advance(k, 99, `owner${winner}`, 5000), "behind");
      assert.equal(await hot.advance(k, 101, "late", 5000), "advanced");
      assert.equal(await hot.advance(k, 100, `owner${winner}`, 5000), "behind");
    });

    it("claims a key for one of many racing, and only the holder's writes land; a retry writes again", async () => {
      const [claimKey, a, b] = [key("claim"), key("claim-a"), key("claim-b")];
      await hot.set(b, "old", 5000);
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          hot.claimThenWrite({ key: claimKey, value: `c${i}`, ttlMs: 5000 }, [
            { key: a, value: `by c${i}`, ttlMs: 5000 },
            { key: b, delete: true },
          ]),
        ),
      );
      assert.equal(new Set(results).size, 1, results.join(","));
      const [winner = ""] = results;
      assert.deepEqual(await hot.getMany([claimKey, a, b]), [winner, `by ${winner}`, null]);
      await hot.set(b, "again", 5000);
      assert.equal(
        await hot.claimThenWrite({ key: claimKey, value: "late", ttlMs: 5000 }, [{ key: b, delete: true }]),
        winner,
      );
      assert.equal(await hot.get(b), "again", "a loser writes nothing");
      assert.equal(
        await hot.claimThenWrite({ key: claimKey, value: winner, ttlMs: 5000 }, [{ key: b, delete: true }]),
        winner,
      );
      assert.equal(await hot.get(b), null, "the holder's retry writes");
      const ttl = await hot.ttl(a);
      assert.ok(ttl > 4000 && ttl <= 5000, `ttl ${ttl}`);
    });

    it("reports ttl (0 when absent) and deletes", async () => {
      const [a, b] = [key("ttl-a"), key("ttl-b")];
      assert.equal(await hot.ttl(a), 0);
      await hot.set(a, "x", 5000);
      await hot.set(b, "y", 5000);
      const ttl = await hot.ttl(a);
      assert.ok(ttl > 4000 && ttl <= 5000, `ttl ${ttl}`);
      await hot.delete(a, b);
      await hot.delete();
      assert.deepEqual(await hot.getMany([a, b]), [null, null]);
    });
  });
}
