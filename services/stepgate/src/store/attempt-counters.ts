import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** One attempt at a challenge: its limit and how long each count lives (ms). */
export interface AttemptSpend {
  challengeId: string;
  /** Attempts allowed at the challenge; past it the subject's count is left alone. */
  challengeLimit: number;
  challengeTtlMs: number;
  subject: string;
  /** How long a subject's run of failures lasts after the latest one (sliding). */
  failureTtlMs: number;
}

/** Atomic counters across replicas: attempts per challenge, failures per subject, confirmations per enrolment. */
export interface AttemptCounters {
  /**
   * Counts one attempt at the challenge and, only while that is within its limit, one of the
   * subject's consecutive failures, atomically as a pair. Returns both new counts.
   */
  spend(attempt: AttemptSpend): Promise<{ onChallenge: number; onSubject: number | undefined }>;
  /** Ms until the subject's run of failures lapses; 0 when there is none. */
  failuresLapseInMs(subject: string): Promise<number>;
  /** Ends the subject's run of consecutive failures. */
  clearFailures(subject: string): Promise<void>;
  /** Counts one code tried to confirm a pending factor, kept `ttlMs`; returns the count. */
  countConfirmation(factorId: string, ttlMs: number): Promise<number>;
}

export function createAttemptCounters(hot: HotStore): AttemptCounters {
  return {
    async spend(a) {
      const [onChallenge, onSubject] = await hot.incrementBoth(
        { key: hotKeys.challengeAttempts(a.challengeId), ttlMs: a.challengeTtlMs, limit: a.challengeLimit },
        { key: hotKeys.failures(a.subject), ttlMs: a.failureTtlMs, sliding: true },
      );
      return { onChallenge, onSubject };
    },
    failuresLapseInMs: (subject) => hot.ttl(hotKeys.failures(subject)),
    clearFailures: (subject) => hot.delete(hotKeys.failures(subject)),
    countConfirmation: (factorId, ttlMs) => hot.increment(hotKeys.confirmAttempts(factorId), ttlMs),
  };
}
