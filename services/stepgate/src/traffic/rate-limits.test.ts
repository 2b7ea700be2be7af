import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { RateLimitPolicy } from "../policy/policy.ts";
import { createRateLimitStore } from "../store/rate-limit-store.ts";
import { createRateLimits } from "./rate-limits.ts";

// Without Redis the store counts in this process's memory: the decisions are the same.
const limitsOf = (limits: RateLimitPolicy, localShare = 1) =>
  createRateLimits({
    limits,
    store: createRateLimitStore({ redis: undefined, dependency: undefined, localShare }),
  });

async function refusal(call: Promise<void> | undefined): Promise<StepgateError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof StepgateError);
    return error;
  }
  assert.fail("expected RATE_LIMITED");
}

const call = { caller: "payments", source: "10.0.0.1", subject: "alice" };

describe("rate limits", () => {
  it("lets a caller's quota through, then refuses with the limit's name and the wait", async () => {
    const check = limitsOf({ callers: new Map([["reports", { calls: 3, perSeconds: 10 }]]) });
    for (let i = 0; i < 3; i++) await check({ ...call, caller: "reports" });
    const refused = await refusal(check({ ...call, caller: "reports" }));
    assert.equal(refused.reason, "RATE_LIMITED");
    assert.deepEqual(refused.metadata, { limit: "caller" });
    assert.ok((refused.retryAfterMs ?? 0) > 9_000 && (refused.retryAfterMs ?? 0) <= 10_000);
    await check(call);
  });

  it("gives callers without a quota of their own the default, each counted apart", async () => {
    const check = limitsOf({ caller: { calls: 2, perSeconds: 10 }, callers: new Map() });
    await check(call);
    await check(call);
    await check({ ...call, caller: "mail" });
    assert.equal((await refusal(check(call))).metadata.limit, "caller");
  });

  it("counts subjects only when the call names one, and sources apart from callers", async () => {
    const check = limitsOf({
      subject: { calls: 1, perSeconds: 10 },
      source: { calls: 3, perSeconds: 10 },
      callers: new Map(),
    });
    await check(call);
    assert.equal((await refusal(check(call))).metadata.limit, "subject");
    // The refused call gave its source count back: two of three are spent.
    await check({ caller: "payments", source: "10.0.0.1" });
    await check({ caller: "mail", source: "10.0.0.1" });
    assert.equal((await refusal(check({ caller: "mail", source: "10.0.0.1" }))).metadata.limit, "source");
    await check({ caller: "mail", source: "10.0.0.2" });
  });

  it("gives back what other limits counted when one refuses: a flood does not spend a subject", async () => {
    const check = limitsOf({
      subject: { calls: 2, perSeconds: 10 },
      callers: new Map([["flood", { calls: 1, perSeconds: 10 }]]),
    });
    await check({ ...call, caller: "flood" });
    for (let i = 0; i < 5; i++) await refusal(check({ ...call, caller: "flood" }));
    await check(call);
    assert.equal((await refusal(check(call))).metadata.limit, "subject", "the subject had two calls left");
  });

  it("allows its share of each limit while it counts alone", async () => {
    const check = limitsOf({ caller: { calls: 9, perSeconds: 10 }, callers: new Map() }, 1 / 3);
    for (let i = 0; i < 3; i++) await check(call);
    assert.equal((await refusal(check(call))).metadata.limit, "caller");
  });

  it("does nothing when the policy sets no limit", async () => {
    const check = limitsOf({ callers: new Map() });
    for (let i = 0; i < 100; i++) await check(call);
  });
});
