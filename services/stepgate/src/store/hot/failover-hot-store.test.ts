// The failover's switching rules over memory stores and a breaker driven by hand: pure logic (the
// real Redis and PostgreSQL runs are test/degraded/*).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { Dependency } from "../dependency.ts";
import { hotKeys, isFlowKey } from "../hot-keys.ts";
import { createFailoverHotStore } from "./failover-hot-store.ts";
import { createMemoryHotStore } from "./memory-hot-store.ts";
import type { RedisHotStore } from "./redis-hot-store.ts";

/**
 * A breaker whose state the test sets, and a primary whose reconnects the test fires; `onSwitch`
 * is told of each move after it is recorded.
 */
function rig(settleMs: number, onSwitch?: (active: "redis" | "postgresql") => void) {
  const listeners: ((available: boolean) => void)[] = [];
  const reconnects: (() => void)[] = [];
  let available = true;
  const dependency: Dependency = {
    name: "redis",
    callTimeoutMs: 100,
    get available() {
      return available;
    },
    run: (call) => call(),
    probe: (call) => call(),
    onChange: (l) => listeners.push(l),
  };
  const primary: RedisHotStore = {
    ...createMemoryHotStore(),
    ready: async () => true,
    onReconnect: (l) => reconnects.push(l),
    probe: async () => {},
    close: async () => {},
  };
  const fallback = createMemoryHotStore();
  let resyncs = 0;
  let failNext = 0;
  const switches: string[] = [];
  const store = createFailoverHotStore({
    primary,
    primaryDependency: dependency,
    fallback,
    resync: async () => {
      resyncs++;
      if (failNext > 0) {
        failNext--;
        throw new Error("postgresql is unavailable");
      }
    },
    onSwitch: (active) => {
      switches.push(active);
      onSwitch?.(active);
    },
    settleMs,
    readThrough: isFlowKey,
  });
  return {
    store,
    primary,
    fallback,
    switches,
    resyncs: () => resyncs,
    failResyncs: (n: number) => {
      failNext = n;
    },
    setAvailable(next: boolean) {
      available = next;
      for (const l of listeners) l(next);
    },
    reconnect: () => {
      for (const l of reconnects) l();
    },
  };
}

const until = async (done: () => boolean, ms = 2000) => {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await sleep(5);
  assert.ok(done(), "condition not reached in time");
};

describe("failover hot store: the fleet does not split across Redis and PostgreSQL", () => {
  it("after a reconnect its circuit never saw, stays on PostgreSQL for settleMs, then resyncs and returns", async () => {
    const r = rig(150);
    r.reconnect();
    assert.equal(r.store.kind, "postgresql");
    await sleep(80);
    assert.equal(r.store.kind, "postgresql", "still holding: peers may not see Redis back yet");
    assert.equal(r.resyncs(), 0);
    await until(() => r.store.kind === "redis");
    assert.equal(r.resyncs(), 1);
    assert.deepEqual(r.switches, ["postgresql", "redis"]);
  });

  it("returns without holding when its own circuit closes after an outage", async () => {
    const r = rig(5000);
    r.setAvailable(false);
    assert.equal(r.store.kind, "postgresql");
    r.reconnect(); // The client reconnects while the circuit is still open: no hold.
    r.setAvailable(true);
    await until(() => r.store.kind === "redis", 1000);
  });

  it("for settleMs after returning, finds on PostgreSQL the flow state a slower peer wrote there", async () => {
    const r = rig(200);
    r.setAvailable(false);
    r.setAvailable(true);
    await until(() => r.store.kind === "redis");
    const challenge = hotKeys.challenge("c1");
    const rate = hotKeys.rateLimit("subject", "alice");
    await r.fallback.set(challenge, "sealed challenge", 60_000);
    await r.fallback.set(rate, "3", 60_000);
    await r.primary.set(hotKeys.answered("c1"), "claim-a", 60_000);
    assert.deepEqual(await r.store.getMany([challenge, hotKeys.answered("c1"), rate]), [
      "sealed challenge",
      "claim-a",
      null,
    ]);
    assert.equal(await r.store.get(challenge), "sealed challenge");
    await sleep(220);
    assert.equal(await r.store.get(challenge), null, "settled: Redis alone answers");
  });

  it("a retry pending from a failed resync does not move calls off Redis once a later one succeeded", async () => {
    const r = rig(0);
    r.setAvailable(false);
    r.failResyncs(1);
    r.setAvailable(true); // This resync fails and schedules a retry a second later.
    await until(() => r.resyncs() === 1);
    await sleep(20);
    r.reconnect(); // The next one succeeds, well before the retry is due.
    await until(() => r.store.kind === "redis", 500);
    const switchesBack = r.switches.length;
    await sleep(1200);
    assert.equal(r.store.kind, "redis");
    assert.equal(r.switches.length, switchesBack, "no move after the success");
  });

  for (const [when, tell] of [
    ["at once", (reconnect: () => void) => reconnect()],
    ["a microtask later", (reconnect: () => void) => queueMicrotask(reconnect)],
  ] as const) {
    it(`a reconnect told ${when} as calls move back to Redis resyncs again and returns`, async () => {
      let reconnectOnce: (() => void) | undefined;
      const r = rig(0, (active) => {
        if (active !== "redis" || !reconnectOnce) return;
        tell(reconnectOnce);
        reconnectOnce = undefined;
      });
      r.setAvailable(false);
      reconnectOnce = r.reconnect;
      r.setAvailable(true);
      await until(() => r.resyncs() === 2 && r.store.kind === "redis", 500);
      assert.deepEqual(r.switches, ["postgresql", "redis", "postgresql", "redis"]);
    });
  }
});
