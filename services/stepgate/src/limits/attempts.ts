import type { Policy } from "../config/policy.ts";
import { hotKey } from "../domain/hot-keys.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { HotStore } from "../store/hot-store.ts";

/**
 * Attempt limits. Each attempt is counted before the answer is checked, with an atomic
 * increment, so parallel guesses across replicas can never check more answers than the limit.
 */
export interface Attempts {
  /**
   * Spends one attempt at the challenge and then one of the subject's consecutive failures, in one
   * atomic step: CHALLENGE_LOCKED past the challenge's limit (the subject's count is left alone),
   * SUBJECT_LOCKED past the subject's. Returns the challenge's attempts left.
   */
  spend(challengeId: string, subject: string, challengeTtlMs: number): Promise<number>;
  /** A right answer ends the subject's run of consecutive failures. */
  succeeded(subject: string): Promise<void>;
}

export function createAttempts(hot: HotStore, policy: Policy): Attempts {
  const failuresKey = (subject: string) => hotKey("failures", subject);
  return {
    async spend(challengeId, subject, challengeTtlMs) {
      const [onChallenge, onSubject] = await hot.incrementBoth(
        { key: `attempts:${challengeId}`, ttlMs: challengeTtlMs, limit: policy.challengeMaxAttempts },
        // Sliding: the lockout lasts `duration` from the latest failed attempt.
        { key: failuresKey(subject), ttlMs: policy.lockoutDuration * 1000, sliding: true },
      );
      if (onChallenge > policy.challengeMaxAttempts) {
        throw new StepgateError("CHALLENGE_LOCKED", "no attempts left", {
          metadata: { attempts_remaining: "0" },
        });
      }
      if ((onSubject ?? 0) > policy.lockoutMaxFailures) {
        throw new StepgateError("SUBJECT_LOCKED", "too many failed attempts", {
          retryAfterMs: await hot.ttl(failuresKey(subject)),
        });
      }
      return policy.challengeMaxAttempts - onChallenge;
    },
    async succeeded(subject) {
      await hot.delete(failuresKey(subject));
    },
  };
}
