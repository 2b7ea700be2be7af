import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import { createAttemptCounters } from "../store/attempt-counters.ts";
import { createMemoryHotStore } from "../store/hot/memory-hot-store.ts";
import { createAttempts } from "./attempts.ts";

const policy = { challengeMaxAttempts: 2, lockoutMaxFailures: 3, lockoutDuration: 10 };

function attemptsAt(start = 1_000_000) {
  let now = start;
  const counters = createAttemptCounters(createMemoryHotStore(() => now));
  return {
    attempts: createAttempts({ counters, policy }),
    advance: (ms: number) => {
      now += ms;
    },
  };
}

const reasonOf = (e: unknown) => (e instanceof StepgateError ? e.reason : String(e));

const retryOf = (e: unknown) => (e instanceof StepgateError ? (e.retryAfterMs ?? -1) : -1);

/** Expects SUBJECT_LOCKED and returns its retry time in ms. */
async function lockedFor(call: Promise<unknown>): Promise<number> {
  let retry = -1;
  await assert.rejects(call, (e) => {
    assert.equal(reasonOf(e), "SUBJECT_LOCKED");
    retry = retryOf(e);
    return true;
  });
  return retry;
}

describe("attempt limits (in-memory hot store)", () => {
  it("counts a challenge's attempts down and then locks it", async () => {
    const { attempts } = attemptsAt();
    assert.equal((await attempts.spend("c1", "alice", 60_000)).attemptsLeft, 1);
    assert.equal((await attempts.spend("c1", "alice", 60_000)).attemptsLeft, 0);
    await assert.rejects(attempts.spend("c1", "alice", 60_000), (e) => reasonOf(e) === "CHALLENGE_LOCKED");
  });

  it("does not count attempts at a locked challenge against the subject", async () => {
    const { attempts } = attemptsAt();
    await attempts.spend("c1", "alice", 60_000);
    await attempts.spend("c1", "alice", 60_000);
    for (let i = 0; i < 5; i++) await assert.rejects(attempts.spend("c1", "alice", 60_000));
    // Two failures so far: the third is allowed and reaches the lock; the fourth is refused.
    const third = await attempts.spend("c2", "alice", 60_000);
    assert.deepEqual(third, { attemptsLeft: 1, failures: 3 });
    assert.equal(await attempts.failed("alice", third), true, "the third failure starts the lockout");
    const retry = await lockedFor(attempts.spend("c2", "alice", 60_000));
    assert.ok(retry > 9_000 && retry <= 10_000, `retry after ${retry} ms`);
  });

  it("a success ends the run of failures; the lockout lapses after its duration", async () => {
    const { attempts, advance } = attemptsAt();
    await attempts.spend("c1", "alice", 60_000);
    await attempts.spend("c1", "alice", 60_000);
    await attempts.succeeded("alice");
    await attempts.spend("c2", "alice", 60_000);
    assert.equal(await attempts.failed("alice", await attempts.spend("c2", "alice", 60_000)), false);
    await attempts.spend("c3", "alice", 60_000);
    await lockedFor(attempts.spend("c3", "alice", 60_000));
    advance(10_001);
    assert.deepEqual(await attempts.spend("c4", "alice", 60_000), { attemptsLeft: 1, failures: 1 });
  });

  it("refused calls during a lockout neither count nor extend it: RetryInfo counts down", async () => {
    const { attempts, advance } = attemptsAt();
    for (const c of ["c1", "c1", "c2"]) await attempts.spend(c, "alice", 60_000);
    const seen: number[] = [];
    for (let i = 0; i < 4; i++) {
      advance(2_000);
      seen.push(await lockedFor(attempts.spend(`c${i + 3}`, "alice", 60_000)));
    }
    assert.deepEqual(seen, [8_000, 6_000, 4_000, 2_000]);
    advance(2_000);
    assert.equal(
      (await attempts.spend("c9", "alice", 60_000)).failures,
      1,
      "ended 10 s after the last failure",
    );
  });
});
