import { StepgateError } from "../domain/stepgate-error.ts";
import type { Policy } from "../policy/policy.ts";
import type { AttemptCounters } from "../store/attempt-counters.ts";
import type { HotWrite } from "../store/hot/hot-store.ts";

/** One attempt that may go on to check its answer. */
export interface SpentAttempt {
  /** Attempts left at the challenge after this one. */
  attemptsLeft: number;
  /** The subject's consecutive failures, this attempt included (a right answer clears them). */
  failures: number;
}

/**
 * Attempt limits. Each attempt is counted before the answer is checked, with an atomic
 * increment, so parallel guesses across replicas can never check more answers than the limit.
 * A lockout lasts the policy's `duration` (s) after the failure that reached `max_failures`: calls
 * refused while it holds are not failures, count nothing and do not extend it.
 */
export interface Attempts {
  /**
   * Spends one attempt at the challenge and then one of the subject's consecutive failures, in one
   * atomic step. Fails with SUBJECT_LOCKED while the subject is locked (nothing spent; the ms until
   * it lifts as `retryAfterMs`, counting down), or CHALLENGE_LOCKED past the challenge's limit (the
   * subject's count is left alone).
   */
  spend(challengeId: string, subject: string, challengeTtlMs: number): Promise<SpentAttempt>;
  /**
   * Records that the attempt's answer was wrong. Returns true when this failure started a lockout,
   * which is then also kept durably (PostgreSQL beside Redis).
   */
  failed(subject: string, attempt: SpentAttempt): Promise<boolean>;
  /** A right answer ends the subject's run of consecutive failures. */
  succeeded(subject: string): Promise<void>;
  /** The write `succeeded` makes, for a use case that applies it with its own (one round trip). */
  succeededWrite(subject: string): HotWrite;
  /** Gives back the attempt of a call that could not check its proof: a store's failure is not the user's. */
  refund(challengeId: string, subject: string): Promise<void>;
}

export interface AttemptsDeps {
  counters: AttemptCounters;
  policy: Pick<Policy, "challengeMaxAttempts" | "lockoutMaxFailures" | "lockoutDuration">;
}

export function createAttempts({ counters, policy }: AttemptsDeps): Attempts {
  // Sliding: each failure restarts the run's expiry, so a lockout lasts `duration` from the last one.
  const failureTtlMs = policy.lockoutDuration * 1000;
  return {
    async spend(challengeId, subject, challengeTtlMs) {
      const count = await counters.spend({
        challengeId,
        challengeLimit: policy.challengeMaxAttempts,
        challengeTtlMs,
        subject,
        failureTtlMs,
        lockAt: policy.lockoutMaxFailures,
      });
      if (count.kind === "subject_locked") {
        throw new StepgateError("SUBJECT_LOCKED", "too many failed attempts", {
          retryAfterMs: await counters.failuresLapseInMs(subject),
        });
      }
      if (count.kind === "challenge_spent") {
        throw new StepgateError("CHALLENGE_LOCKED", "no attempts left", {
          metadata: { attempts_remaining: "0" },
        });
      }
      return { attemptsLeft: policy.challengeMaxAttempts - count.onChallenge, failures: count.onSubject };
    },
    async failed(subject, attempt) {
      if (attempt.failures < policy.lockoutMaxFailures) return false;
      await counters.keepLockout(subject, attempt.failures, failureTtlMs);
      return true;
    },
    succeeded: (subject) => counters.clearFailures(subject),
    succeededWrite: (subject) => counters.clearFailuresWrite(subject),
    refund: (challengeId, subject) => counters.refund(challengeId, subject),
  };
}
