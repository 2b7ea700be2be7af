import { type DurableMirror, noMirror } from "./durable-mirror.ts";
import type { HotStore, HotWrite } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** One attempt at a challenge: its limit and how long each count lives (ms). */
export interface AttemptSpend {
  challengeId: string;
  /** Attempts allowed at the challenge; past it the subject's count is left alone. */
  challengeLimit: number;
  challengeTtlMs: number;
  subject: string;
  /** How long a subject's run of failures lasts after the latest one (sliding), in ms. */
  failureTtlMs: number;
  /** The subject's failures at which it is locked: while it holds that many nothing is counted. */
  lockAt: number;
}

/** What counting one attempt found. */
export type AttemptCount =
  /** Both counted: the challenge's attempts and the subject's run, this attempt included. */
  | { kind: "counted"; onChallenge: number; onSubject: number }
  /** The challenge had no attempts left; the subject's run was left alone. */
  | { kind: "challenge_spent"; onChallenge: number }
  /** The subject is locked: nothing was counted and the lock's expiry did not move. */
  | { kind: "subject_locked" };

/** Atomic counters across replicas: attempts per challenge, failures per subject, confirmations per enrolment. */
export interface AttemptCounters {
  /**
   * Counts one attempt at the challenge and, only while that is within its limit, one of the
   * subject's consecutive failures, atomically as a pair; counts nothing while the subject is locked.
   */
  spend(attempt: AttemptSpend): Promise<AttemptCount>;
  /**
   * Keeps a lockout that was just reached (`failures` counted, lasting `ttlMs`) in PostgreSQL too,
   * so a Redis that restarts empty does not lift it. Nothing when the hot store is durable itself.
   */
  keepLockout(subject: string, failures: number, ttlMs: number): Promise<void>;
  /** Ms until the subject's run of failures lapses; 0 when there is none. */
  failuresLapseInMs(subject: string): Promise<number>;
  /** Ends the subject's run of consecutive failures. */
  clearFailures(subject: string): Promise<void>;
  /**
   * Ends the subject's run of consecutive failures and its lockout in the hot store and in
   * PostgreSQL's durable copy (which a resync would otherwise carry back into Redis).
   */
  unlock(subject: string): Promise<void>;
  /** The write `clearFailures` makes, to apply with others (HotStore.claimThenWrite). */
  clearFailuresWrite(subject: string): HotWrite;
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
      const [onChallenge, onSubject] = await hot.incrementBoth(
        { key: hotKeys.challengeAttempts(a.challengeId), ttlMs: a.challengeTtlMs, limit: a.challengeLimit },
        { key: hotKeys.failures(a.subject), ttlMs: a.failureTtlMs, limit: a.lockAt, sliding: true },
      );
      if (onChallenge === undefined) return { kind: "subject_locked" };
      if (onSubject === undefined) return { kind: "challenge_spent", onChallenge };
      return { kind: "counted", onChallenge, onSubject };
    },
    async keepLockout(subject, failures, ttlMs) {
      await mirror.run((durable) => durable.raise(hotKeys.failures(subject), failures, ttlMs), undefined);
    },
    failuresLapseInMs: (subject) => hot.ttl(hotKeys.failures(subject)),
    clearFailures: (subject) => hot.delete(hotKeys.failures(subject)),
    async unlock(subject) {
      const key = hotKeys.failures(subject);
      // The durable copy first, so an error leaves the lock whole; with PostgreSQL down it is skipped
      // and a later resync may restore the lock until it lapses (an unlock can then be repeated).
      await mirror.run((durable) => durable.delete(key), undefined);
      await hot.delete(key);
    },
    clearFailuresWrite: (subject) => ({ key: hotKeys.failures(subject), delete: true }),
    async refund(challengeId, subject) {
      await Promise.all([
        hot.decrement(hotKeys.challengeAttempts(challengeId)),
        hot.decrement(hotKeys.failures(subject)),
      ]);
    },
    countConfirmation: (factorId, ttlMs) => hot.increment(hotKeys.confirmAttempts(factorId), ttlMs),
  };
}
