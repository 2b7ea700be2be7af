import type { Policy } from "../config/policy.ts";
import { hotKey } from "../domain/hot-keys.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { HotStore } from "../store/hot-store.ts";

/**
 * Attempt limits. Each attempt is counted before the answer is checked, with an atomic
 * increment, so parallel guesses across replicas can never check more answers than the limit.
 */
export interface Attempts {
  /** Spends one attempt at a challenge; throws CHALLENGE_LOCKED past the limit. Returns attempts left. */
  spendOnChallenge(scope: string, ttlMs: number): Promise<number>;
  /** Spends one of the subject's consecutive failures; throws SUBJECT_LOCKED past the limit. */
  spendOnSubject(subject: string): Promise<void>;
  /** A right answer ends the subject's run of consecutive failures. */
  succeeded(subject: string): Promise<void>;
}

export function createAttempts(hot: HotStore, policy: Policy): Attempts {
  const failuresKey = (subject: string) => hotKey("failures", subject);
  return {
    async spendOnChallenge(scope, ttlMs) {
      const n = await hot.increment(`attempts:${scope}`, ttlMs);
      if (n > policy.challengeMaxAttempts) {
        throw new StepgateError("CHALLENGE_LOCKED", "no attempts left", {
          metadata: { attempts_remaining: "0" },
        });
      }
      return policy.challengeMaxAttempts - n;
    },
    async spendOnSubject(subject) {
      const key = failuresKey(subject);
      // Sliding: the lockout lasts `duration` from the latest failed attempt.
      const n = await hot.increment(key, policy.lockoutDuration * 1000, true);
      if (n > policy.lockoutMaxFailures) {
        throw new StepgateError("SUBJECT_LOCKED", "too many failed attempts", {
          retryAfterMs: await hot.ttl(key),
        });
      }
    },
    async succeeded(subject) {
      await hot.delete(failuresKey(subject));
    },
  };
}
