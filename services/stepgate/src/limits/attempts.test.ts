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

describe("attempt limits (in-memory hot store)", () => {
  it("counts a challenge's attempts down and then locks it", async () => {
    const { attempts } = attemptsAt();
    assert.equal(await attempts.spend("c1", "alice", 60_000), 1);
    assert.equal(await attempts.spend("c1", "alice", 60_000), 0);
    await assert.rejects(attempts.spend("c1", "alice", 60_000), (e) => reasonOf(e) === "CHALLENGE_LOCKED");
  });

  it("does not count attempts at a locked challenge against the subject", async () => {
    const { attempts } = attemptsAt();
    await attempts.spend("c1", "alice", 60_000);
    await attempts.spend("c1", "alice", 60_000);
    for (let i = 0; i < 5; i++) await assert.rejects(attempts.spend("c1", "alice", 60_000));
    // Two failures so far: the third is allowed, the fourth locks the subject.
    assert.equal(await attempts.spend("c2", "alice", 60_000), 1);
    await assert.rejects(attempts.spend("c2", "alice", 60_000), (e) => {
      assert.equal(reasonOf(e), "SUBJECT_LOCKED");
      const retry = (e as StepgateError).retryAfterMs ?? 0;
      assert.ok(retry > 9_000 && retry <= 10_000, `retry after ${retry} ms`);
      return true;
    });
  });

  it("a success ends the run of failures; the lockout lapses after its duration", async () => {
    const { attempts, advance } = attemptsAt();
    await attempts.spend("c1", "alice", 60_000);
    await attempts.spend("c1", "alice", 60_000);
    await attempts.succeeded("alice");
    await attempts.spend("c2", "alice", 60_000);
    await attempts.spend("c2", "alice", 60_000);
    await attempts.spend("c3", "alice", 60_000);
    await assert.rejects(attempts.spend("c3", "alice", 60_000), (e) => reasonOf(e) === "SUBJECT_LOCKED");
    advance(10_001);
    assert.equal(await attempts.spend("c4", "alice", 60_000), 1);
  });
});
