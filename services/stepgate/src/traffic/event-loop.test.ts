import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { watchEventLoop } from "./event-loop.ts";

describe("event loop watch", () => {
  it("reads an idle loop as idle and a busy one as saturated", async () => {
    const samples: boolean[] = [];
    const watch = watchEventLoop({ intervalMs: 50, onSample: (_, saturated) => samples.push(saturated) });
    await sleep(120);
    assert.ok(watch.utilization() < 0.5, `idle: ${watch.utilization()}`);
    assert.equal(watch.saturated(), false);
    // Keep the loop busy for 300 ms in 20 ms slices, as a flood of callbacks would.
    const until = performance.now() + 300;
    while (performance.now() < until) {
      const slice = performance.now() + 20;
      while (performance.now() < slice) {}
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.ok(watch.utilization() > 0.9, `busy: ${watch.utilization()}`);
    assert.ok(samples.includes(true), "a saturated sample was reported");
    watch.stop();
  });
});
