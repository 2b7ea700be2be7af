import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createBestEffortShare } from "./best-effort-share.ts";

describe("best-effort share of the event loop", () => {
  it("gives way while the loop is busier than allowed, and grows back once it is not", () => {
    const share = createBestEffortShare({ busyAtMost: 0.8, max: () => 40 });
    assert.equal(share.slots, 40);
    share.sample(1);
    assert.equal(share.slots, 40, "one busy sample is a pause, not a flood");
    for (let i = 0; i < 4; i++) share.sample(1);
    assert.ok(share.slots < 40, `gives way once the loop stays busy: ${share.slots}`);
    for (let i = 0; i < 20; i++) share.sample(0.99);
    assert.equal(share.slots, 2, "never below two slots");
    for (let i = 0; i < 10; i++) share.sample(0.75);
    assert.equal(share.slots, 2, "holds between 0.7 and 0.8");
    for (let i = 0; i < 20; i++) share.sample(0.3);
    assert.equal(share.slots, 40, "back to the whole limit");
  });

  it("never exceeds the admission limit, even when that falls", () => {
    let max = 40;
    const share = createBestEffortShare({ busyAtMost: 0.8, max: () => max });
    max = 10;
    assert.equal(share.slots, 10);
    for (let i = 0; i < 8; i++) share.sample(1);
    assert.ok(share.slots < 10);
    max = 1;
    assert.equal(share.slots, 1);
  });
});
