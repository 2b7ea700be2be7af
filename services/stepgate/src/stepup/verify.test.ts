import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import { unitStepgate } from "./unit-fixture.ts";
import type { VerifyInput } from "./verify.ts";

const base = { subject: "alice", sessionId: "s1", action: "payments.transfer", caller: "payments" };

async function challengeFor(u: ReturnType<typeof unitStepgate>) {
  const outcome = await u.stepUp({ ...base, context: {} });
  assert.equal(outcome.kind, "challenge");
  return outcome.challenge;
}

const answer = (challengeId: string, extra: Partial<VerifyInput> = {}): VerifyInput => ({
  ...base,
  challengeId,
  method: "totp",
  code: "123456",
  idempotencyKey: "key-00000001",
  ...extra,
});

async function reasonOf(call: Promise<unknown>): Promise<StepgateError> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof StepgateError, String(error));
    return error;
  }
  assert.fail("expected a StepgateError");
}

describe("verify decision steps (in-memory hot store)", () => {
  it("refuses an unknown challenge and one asked from another subject, session, action or caller", async () => {
    const u = unitStepgate();
    assert.equal((await reasonOf(u.verify(answer("nope-nope-nope-nope")))).reason, "CHALLENGE_NOT_FOUND");
    const c = await challengeFor(u);
    for (const other of [
      { subject: "bob" },
      { sessionId: "s2" },
      { action: "secrets.read" },
      { caller: "x" },
    ]) {
      assert.equal((await reasonOf(u.verify(answer(c.id, other)))).reason, "CHALLENGE_MISMATCH");
    }
    assert.equal(u.proofs.length, 0, "no proof is checked for a mismatched call");
  });

  it("refuses an expired challenge and a method it does not offer, spending no attempt", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    const wrongMethod = answer(c.id, { method: "recovery_code", idempotencyKey: "key-00000002" });
    assert.equal((await reasonOf(u.verify(wrongMethod))).reason, "METHOD_NOT_ALLOWED");
    u.advance(61_000);
    assert.equal((await reasonOf(u.verify(answer(c.id)))).reason, "CHALLENGE_EXPIRED");
    assert.equal(u.proofs.length, 0);
  });

  it("counts wrong codes down, then locks the challenge without counting against the subject", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    u.script.push({ result: "wrong" }, { result: "wrong" }, { result: "wrong" });
    const remaining = [];
    for (let i = 0; i < 3; i++) {
      const e = await reasonOf(u.verify(answer(c.id, { idempotencyKey: `key-wrong-${i}` })));
      assert.equal(e.reason, "WRONG_CODE");
      remaining.push(e.metadata.attempts_remaining);
    }
    assert.deepEqual(remaining, ["2", "1", "0"]);
    const locked = await reasonOf(u.verify(answer(c.id, { idempotencyKey: "key-wrong-3" })));
    assert.equal(locked.reason, "CHALLENGE_LOCKED");
    assert.equal(u.proofs.length, 3, "a locked challenge checks no proof");
    const failures = u.audited.filter((r) => r.type === "verify.failed");
    assert.equal(failures.length, 3);
  });

  it("locks the subject after too many failures across challenges, with a retry time", async () => {
    const u = unitStepgate();
    u.script.push(...Array.from({ length: 4 }, () => ({ result: "wrong" as const })));
    for (let i = 0; i < 2; i++) {
      const c = await challengeFor(u);
      for (let j = 0; j < 2; j++) {
        const e = await reasonOf(u.verify(answer(c.id, { idempotencyKey: `key-${i}-${j}-x` })));
        assert.equal(e.reason, "WRONG_CODE");
      }
    }
    const c = await challengeFor(u);
    const locked = await reasonOf(u.verify(answer(c.id)));
    assert.equal(locked.reason, "SUBJECT_LOCKED");
    assert.ok(locked.retryAfterMs !== undefined && locked.retryAfterMs > 0 && locked.retryAfterMs <= 30_000);
    // The fourth wrong answer started the lockout: counted once, against the caller that sent it.
    assert.deepEqual(u.lockouts, ["payments"]);
    assert.equal(u.audited.filter((r) => r.type === "lockout.started").length, 1);
  });

  it("refuses a replayed code as CODE_REPLAYED", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    u.script.push({ result: "replayed" });
    assert.equal((await reasonOf(u.verify(answer(c.id)))).reason, "CODE_REPLAYED");
  });

  it("refuses a code that matched a removed factor as FACTOR_REMOVED, counted as a failure", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    u.script.push({ result: "removed" });
    const refused = await reasonOf(u.verify(answer(c.id)));
    assert.equal(refused.reason, "FACTOR_REMOVED");
    assert.equal(u.audited.at(-1)?.type, "verify.failed");
  });

  it("refuses a challenge whose session ended after it was issued, checking and counting nothing", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    u.advance(1);
    await u.stores.sessions.end("alice", "s1", u.now(), 60_000, ["aal2"]);
    assert.equal((await reasonOf(u.verify(answer(c.id)))).reason, "SESSION_ENDED");
    assert.equal(u.proofs.length, 0);
    u.advance(1);
    await assert.rejects(challengeFor(u), { reason: "SESSION_ENDED" }, "the session stays ended");
  });

  it("on success records the elevation, grants once, and answers a retry with the same grant", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    const first = await u.verify(answer(c.id));
    assert.equal(first.grant.claims.acr, "aal2");
    assert.equal(first.grant.claims.aud, "payments");
    const retry = await u.verify(answer(c.id));
    assert.equal(retry.grant.token, first.grant.token, "same key, same grant");
    assert.equal(u.proofs.length, 1, "the retry is answered from the recorded result");
    const other = await reasonOf(u.verify(answer(c.id, { idempotencyKey: "key-00000002" })));
    assert.equal(other.reason, "CHALLENGE_USED");
    const reused = await reasonOf(u.verify(answer(c.id, { code: "654321" })));
    assert.equal(reused.reason, "IDEMPOTENCY_KEY_REUSED");
    const again = await u.stepUp({ ...base, context: {} });
    assert.equal(again.kind, "grant", "the session's elevation answers the next StepUp");
  });

  it("records a decided failure for its key, so a retry hears the same failure without a new attempt", async () => {
    const u = unitStepgate();
    const c = await challengeFor(u);
    u.script.push({ result: "wrong" });
    const first = await reasonOf(u.verify(answer(c.id)));
    const retry = await reasonOf(u.verify(answer(c.id)));
    assert.equal(first.reason, "WRONG_CODE");
    assert.equal(retry.reason, "WRONG_CODE");
    assert.equal(retry.metadata.attempts_remaining, first.metadata.attempts_remaining);
    assert.equal(u.proofs.length, 1);
  });
});
