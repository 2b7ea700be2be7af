import { StepgateError } from "../domain/stepgate-error.ts";
import type { Policy } from "../policy/policy.ts";
import type { AttemptCounters } from "../store/attempt-counters.ts";

/**
 * Attempt limits. Each attempt is counted before the answer is checked, with an atomic
 * increment, so parallel guesses across replicas can never check more answers than the limit.
 */
export interface Attempts {
  /**
   * Spends one attempt at the challenge and then one of the subject's consecutive failures, in one
   * atomic step. Returns the challenge's attempts left.
   * Fails with CHALLENGE_LOCKED past the challenge's limit (the subject's count is left alone), or
   * SUBJECT_LOCKED past the subject's (with the ms until it lifts as `retryAfterMs`).
   */
  spend(challengeId: string, subject: string, challengeTtlMs: number): Promise<number>;
  /** A right answer ends the subject's run of consecutive failures. */
  succeeded(subject: string): Promise<void>;
  /** Gives back the attempt of a call that could not check its proof: a store's failure is not the user's. */
  refund(challengeId: string, subject: string): Promise<void>;
}

export interface AttemptsDeps {
  counters: AttemptCounters;
  policy: Pick<Policy, "challengeMaxAttempts" | "lockoutMaxFailures" | "lockoutDuration">;
}

export function createAttempts({ counters, policy }: AttemptsDeps): Attempts {
  return {
    async spend(challengeId, subject, challengeTtlMs) {
      const { onChallenge, onSubject } = await counters.spend({
        challengeId,
        challengeLimit: policy.challengeMaxAttempts,
        challengeTtlMs,
        subject,
        // Sliding: the lockout lasts `duration` from the latest failed attempt.
        failureTtlMs: policy.lockoutDuration * 1000,
        lockedAbove: policy.lockoutMaxFailures,
      });
      if (onChallenge > policy.challengeMaxAttempts) {
        throw new StepgateError("CHALLENGE_LOCKED", "no attempts left", {
          metadata: { attempts_remaining: "0" },
        });
      }
      if ((onSubject ?? 0) > policy.lockoutMaxFailures) {
        throw new StepgateError("SUBJECT_LOCKED", "too many failed attempts", {
          retryAfterMs: await counters.failuresLapseInMs(subject),
        });
      }
      return policy.challengeMaxAttempts - onChallenge;
    },
    succeeded: (subject) => counters.clearFailures(subject),
    refund: (challengeId, subject) => counters.refund(challengeId, subject),
  };
}
