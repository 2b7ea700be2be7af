import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { createGradientLimit } from "./gradient-limit.ts";

const bounds = { initial: 20, min: 4, max: 200 };

describe("gradient concurrency limit", () => {
  it("grows while latency holds and the slots are used", () => {
    const limit = createGradientLimit(bounds);
    for (let i = 0; i < 50; i++) limit.update(2, limit.limit);
    assert.ok(limit.limit > 40, `grew to ${limit.limit}`);
  });

  it("does not grow while fewer than half of its slots are used", () => {
    const limit = createGradientLimit(bounds);
    for (let i = 0; i < 50; i++) limit.update(2, 5);
    assert.equal(limit.limit, 20);
  });

  it("falls when latency rises past the tolerance, and recovers once it is back", () => {
    const limit = createGradientLimit(bounds);
    for (let i = 0; i < 30; i++) limit.update(2, limit.limit);
    const before = limit.limit;
    for (let i = 0; i < 10; i++) limit.update(20, limit.limit);
    const during = limit.limit;
    assert.ok(during < before / 2, `fell from ${before} to ${during}`);
    for (let i = 0; i < 60; i++) limit.update(2, limit.limit);
    assert.ok(limit.limit > during * 2, `recovered from ${during} to ${limit.limit}`);
  });

  it("backs off by 10% at a time, never below the minimum", () => {
    const limit = createGradientLimit(bounds);
    limit.backOff();
    assert.equal(limit.limit, 18);
    for (let i = 0; i < 100; i++) limit.backOff();
    assert.equal(limit.limit, 4);
  });

  it("stays within its bounds whatever it observes", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.double({ min: -1, max: 1e6, noNaN: true }), fc.nat(1000), fc.boolean()), {
          maxLength: 200,
        }),
        (events) => {
          const limit = createGradientLimit(bounds);
          for (const [latency, inFlight, backOff] of events) {
            if (backOff) limit.backOff();
            else limit.update(latency, inFlight);
            assert.ok(limit.limit >= 4 && limit.limit <= 200 && Number.isInteger(limit.limit));
          }
        },
      ),
    );
  });
});
