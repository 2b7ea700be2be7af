import assert from "node:assert/strict";
import { test } from "node:test";
import { BoundedMemoryLimiter } from "./bounded-memory-limiter.ts";

const consumed = (promise: Promise<unknown>) =>
  promise.then(
    () => true,
    () => false,
  );

test("a full in-memory limit counts new keys together and keeps the keys it holds apart", async () => {
  const limiter = new BoundedMemoryLimiter({ points: 2, duration: 60 }, 3);
  for (const key of ["a", "b", "c"]) assert.equal(await consumed(limiter.consume(key)), true);
  assert.equal(limiter.size, 3);
  // d and e are new while the limit is full: they share the overflow counter (2 calls in all).
  assert.equal(await consumed(limiter.consume("d")), true);
  assert.equal(await consumed(limiter.consume("e")), true);
  assert.equal(await consumed(limiter.consume("f")), false);
  assert.equal(limiter.size, 4, "three keys and the overflow counter");
  // a still has its own counter: one call left of two.
  assert.equal(await consumed(limiter.consume("a")), true);
  assert.equal(await consumed(limiter.consume("a")), false);
});

test("thousands of distinct keys hold no more records than the bound", async () => {
  const limiter = new BoundedMemoryLimiter({ points: 1_000_000, duration: 60 }, 100);
  for (let i = 0; i < 5000; i++) await limiter.consume(`source-${i}`);
  assert.equal(limiter.size, 101);
});

test("a key's room is free again once its window ends", async () => {
  const limiter = new BoundedMemoryLimiter({ points: 1, duration: 1 }, 2);
  for (const key of ["a", "b"]) assert.equal(await consumed(limiter.consume(key)), true);
  // Full: c is counted with the overflow, whose one point it spends.
  assert.equal(await consumed(limiter.consume("c")), true);
  assert.equal(await consumed(limiter.consume("d")), false);
  await new Promise((resolve) => setTimeout(resolve, 1100));
  assert.equal(limiter.size, 0, "every window ended");
  // c has a counter of its own now: its one point, then refused, while e gets its own too.
  assert.equal(await consumed(limiter.consume("c")), true);
  assert.equal(await consumed(limiter.consume("c")), false);
  assert.equal(await consumed(limiter.consume("e")), true);
  assert.equal(limiter.size, 2);
});
