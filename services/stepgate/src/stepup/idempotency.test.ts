import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import { type IdempotentCall, type ResultSlot, runOnce } from "./idempotency.ts";

/** A slot in memory, as one key of the hot store. */
function memorySlot(): ResultSlot & { value: string | null } {
  const slot = {
    value: null as string | null,
    read: async () => slot.value,
    record: async (entry: string) => {
      if (slot.value !== null) return false;
      slot.value = entry;
      return true;
    },
  };
  return slot;
}

const call = (slot: ResultSlot, run: () => Promise<string>, fingerprint = "f1"): IdempotentCall<string> => ({
  slot,
  fingerprint,
  run,
  seal: (v) => `sealed:${v}`,
  open: (s) => s.replace(/^sealed:/, ""),
});

describe("runOnce", () => {
  it("records the first result, sealed, and returns it to every later call with the key", async () => {
    const slot = memorySlot();
    let runs = 0;
    const run = async () => `grant-${++runs}`;
    assert.equal(await runOnce(call(slot, run)), "grant-1");
    assert.match(slot.value ?? "", /sealed:grant-1/);
    assert.equal(await runOnce(call(slot, run)), "grant-1");
    assert.equal(runs, 1);
  });

  it("refuses the key with another request", async () => {
    const slot = memorySlot();
    await runOnce(call(slot, async () => "grant"));
    await assert.rejects(
      runOnce(call(slot, async () => "other", "f2")),
      (e) => e instanceof StepgateError && e.reason === "IDEMPOTENCY_KEY_REUSED",
    );
  });

  it("records a decided failure and replays it", async () => {
    const slot = memorySlot();
    const wrong = async (): Promise<string> => {
      throw new StepgateError("WRONG_CODE", "wrong code", { metadata: { attempts_remaining: "2" } });
    };
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        runOnce(call(slot, i === 0 ? wrong : async () => "never")),
        (e) =>
          e instanceof StepgateError && e.reason === "WRONG_CODE" && e.metadata.attempts_remaining === "2",
      );
    }
  });

  it("records neither a store failure nor a lockout that will lift: a retry runs again", async () => {
    const slot = memorySlot();
    await assert.rejects(runOnce(call(slot, async () => Promise.reject(new Error("ECONNREFUSED")))));
    const locked = async (): Promise<string> => {
      throw new StepgateError("SUBJECT_LOCKED", "locked", { retryAfterMs: 1000 });
    };
    await assert.rejects(runOnce(call(slot, locked)));
    assert.equal(slot.value, null);
    assert.equal(await runOnce(call(slot, async () => "grant")), "grant");
  });

  it("gives overlapping attempts the answer of whichever recorded first", async () => {
    const slot = memorySlot();
    let release: () => void = () => {};
    const slow = call(slot, () => new Promise<string>((r) => (release = () => r("slow"))));
    const pending = runOnce(slow);
    assert.equal(await runOnce(call(slot, async () => "fast")), "fast");
    release();
    assert.equal(await pending, "fast");
  });
});
