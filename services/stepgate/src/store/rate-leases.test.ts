import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { createTestRedisPrefix, redisUrl } from "@stepgate/testkit/test-redis-prefix";
import { Redis } from "ioredis";
import { blockOf, RateLeases, type TakeTokens } from "./rate-leases.ts";
import { createRateLimitStore, type RateCounter, type RateLimitStore } from "./rate-limit-store.ts";

const caller: RateCounter = { name: "caller", calls: 1000, perSeconds: 10 };

/** A shared counter in this process, with a clock the test moves: the leases' logic alone. */
function sharedCounter(limit: number) {
  const state = { now: 1_000_000, used: 0, windowEnd: 0, takes: 0 };
  const take: TakeTokens = async (rate, _key, tokens) => {
    state.takes += 1;
    if (state.now >= state.windowEnd) {
      state.used = 0;
      state.windowEnd = state.now + rate.perSeconds * 1000;
    }
    const granted = Math.max(0, Math.min(tokens, limit - state.used));
    state.used += tokens;
    return { granted, windowLeftMs: state.windowEnd - state.now };
  };
  return { state, take };
}

describe("rate leases (logic)", () => {
  it("spends leased calls without a round trip, a block at a time", async () => {
    const { state, take } = sharedCounter(caller.calls);
    const leases = new RateLeases(take, () => state.now);
    for (let i = 0; i < 100; i++) assert.equal((await leases.count(caller, "payments")).allowed, true);
    // Ten per block (1% of 1000), taken ahead when half a block is left: about 100 / 10 takes.
    assert.ok(state.takes >= 10 && state.takes <= 12, `${state.takes} takes for 100 calls`);
    assert.equal(blockOf(caller), 10);
  });

  it("refuses from memory once the window is used up, until it ends", async () => {
    const { state, take } = sharedCounter(25);
    const leases = new RateLeases(take, () => state.now);
    let allowed = 0;
    for (let i = 0; i < 40; i++) if ((await leases.count(caller, "payments")).allowed) allowed += 1;
    assert.equal(allowed, 25);
    const takes = state.takes;
    const refused = await leases.count(caller, "payments");
    assert.ok(!refused.allowed && refused.retryAfterMs > 9000 && refused.retryAfterMs <= 10_000);
    assert.equal(state.takes, takes, "refused without asking the shared counter");
    state.now += 10_000;
    assert.equal((await leases.count(caller, "payments")).allowed, true, "a new window");
  });

  it("decides from memory without a promise while a lease has tokens or the window is used up", async () => {
    const { state, take } = sharedCounter(12);
    const leases = new RateLeases(take, () => state.now);
    assert.equal(leases.countNow(caller, "payments"), undefined, "nothing leased yet: count must ask");
    assert.equal(state.takes, 0, "countNow takes nothing itself");
    await leases.count(caller, "payments");
    let decided = 0;
    for (let i = 0; i < 30; i++) {
      const now = leases.countNow(caller, "payments") ?? (await leases.count(caller, "payments"));
      if (now.allowed) decided += 1;
      // Let a background refill land between calls, as calls do between their arrivals.
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(decided, 11, "the window's 12 calls, one counted before");
    const refused = leases.countNow(caller, "payments");
    assert.ok(refused && !refused.allowed && refused.retryAfterMs > 9000, "used up: refused from memory");
  });

  it("drops what is left of a window's lease when the window ends", async () => {
    const { state, take } = sharedCounter(1000);
    const leases = new RateLeases(take, () => state.now);
    await leases.count(caller, "payments");
    state.now += 10_000;
    state.used = 1000;
    state.windowEnd = state.now + 10_000;
    // The old lease had tokens left; the new window has none for anyone.
    assert.equal((await leases.count(caller, "payments")).allowed, false);
  });

  it("lets a call through on tokens taken in its window's last millisecond", async () => {
    const take: TakeTokens = async (_rate, _key, tokens) => ({ granted: tokens, windowLeftMs: 0 });
    const leases = new RateLeases(take, () => 1_000_000);
    assert.equal((await leases.count(caller, "payments")).allowed, true);
  });

  it("gives a call back to its lease", async () => {
    const { state, take } = sharedCounter(1);
    const leases = new RateLeases(take, () => state.now);
    assert.equal((await leases.count(caller, "payments")).allowed, true);
    assert.equal((await leases.count(caller, "payments")).allowed, false);
    leases.giveBack(caller, "payments");
    assert.equal((await leases.count(caller, "payments")).allowed, true);
  });

  it("shares one round trip between calls waiting for the same lease", async () => {
    const { state, take } = sharedCounter(1000);
    const leases = new RateLeases(take, () => state.now);
    const verdicts = await Promise.all(Array.from({ length: 8 }, () => leases.count(caller, "payments")));
    assert.ok(verdicts.every((v) => v.allowed));
    // One take shared by all eight, then one top-up in the background (two of ten left).
    assert.ok(state.takes <= 2, `${state.takes} takes`);
  });
});

describe("rate leases over Redis, three replicas", () => {
  const prefix = createTestRedisPrefix();
  const connections: Redis[] = [];
  const replica = (): RateLimitStore => {
    const redis = new Redis(redisUrl, { keyPrefix: prefix.prefix, maxRetriesPerRequest: 1 });
    connections.push(redis);
    return createRateLimitStore({ redis, dependency: { available: true } as never, localShare: 1 / 3 });
  };
  after(async () => {
    for (const c of connections) c.disconnect();
    await prefix.clean();
  });

  /** Calls from `stores` in turn, `concurrency` at once each, until `total` were sent; returns how many were let through. */
  async function hammer(stores: RateLimitStore[], rate: RateCounter, total: number, concurrency = 16) {
    let sent = 0;
    let allowed = 0;
    await Promise.all(
      stores.flatMap((store) =>
        Array.from({ length: concurrency }, async () => {
          while (sent < total) {
            sent += 1;
            if ((await store.count(rate, "flooder")).allowed) allowed += 1;
          }
        }),
      ),
    );
    return allowed;
  }

  it("never lets the fleet past a window's limit, and leaves at most a lease per replica unused", async () => {
    const rate: RateCounter = { name: "caller", calls: 3000, perSeconds: 60 };
    const stores = [replica(), replica(), replica()];
    const allowed = await hammer(stores, rate, 6000);
    assert.ok(allowed <= rate.calls, `${allowed} let through of ${rate.calls}`);
    assert.ok(
      allowed >= rate.calls - 3 * blockOf(rate),
      `${allowed} let through: too many leased and unused`,
    );
  });

  it("holds the limit across short windows within 3% (one lease per replica at each window's end)", async (t) => {
    const rate: RateCounter = { name: "source", calls: 500, perSeconds: 1 };
    const stores = [replica(), replica(), replica()];
    const started = Date.now();
    let allowed = 0;
    while (Date.now() - started < 3200) allowed += await hammer(stores, rate, 300, 4);
    const windows = Math.ceil((Date.now() - started) / 1000) + 1;
    t.diagnostic(
      `${allowed} let through in ${Date.now() - started} ms (${windows} windows of ${rate.calls} at most)`,
    );
    assert.ok(allowed <= windows * rate.calls * 1.03, `${allowed} let through`);
  });
});
