import { type DurableMirror, noMirror } from "./durable-mirror.ts";
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
  /** The subject's count past which it is locked: from there the count is also kept durably. */
  lockedAbove: number;
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
  /**
   * Gives back an attempt spent by a call that could not check its proof (a store failed): a
   * dependency's failure is never the user's. Lowers both counts by one, never below zero.
   */
  refund(challengeId: string, subject: string): Promise<void>;
  /** Counts one code tried to confirm a pending factor, kept `ttlMs`; returns the count. */
  countConfirmation(factorId: string, ttlMs: number): Promise<number>;
}

/** A lockout is mirrored durably, so a Redis that restarts empty does not lift it. */
export function createAttemptCounters(hot: HotStore, mirror: DurableMirror = noMirror): AttemptCounters {
  return {
    async spend(a) {
      const failures = hotKeys.failures(a.subject);
      const [onChallenge, onSubject] = await hot.incrementBoth(
        { key: hotKeys.challengeAttempts(a.challengeId), ttlMs: a.challengeTtlMs, limit: a.challengeLimit },
        { key: failures, ttlMs: a.failureTtlMs, sliding: true },
      );
      if (onSubject !== undefined && onSubject > a.lockedAbove) {
        await mirror.run((durable) => durable.raise(failures, onSubject, a.failureTtlMs), undefined);
      }
      return { onChallenge, onSubject };
    },
    failuresLapseInMs: (subject) => hot.ttl(hotKeys.failures(subject)),
    clearFailures: (subject) => hot.delete(hotKeys.failures(subject)),
    async refund(challengeId, subject) {
      await Promise.all([
        hot.decrement(hotKeys.challengeAttempts(challengeId)),
        hot.decrement(hotKeys.failures(subject)),
      ]);
    },
    countConfirmation: (factorId, ttlMs) => hot.increment(hotKeys.confirmAttempts(factorId), ttlMs),
  };
}
