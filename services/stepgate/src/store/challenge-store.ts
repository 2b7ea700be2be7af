import type { Challenge } from "../domain/challenge.ts";
import type { HotStore, HotWrite } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** What Verify needs to decide, read together. */
export interface ChallengeState {
  challenge: Challenge | undefined;
  /** The result recorded for this call's claim (see VerifyResults), or null. */
  recorded: string | null;
  /** The claim of the call that answered the challenge, or null while unanswered. */
  answeredBy: string | null;
  /** When the challenge's session was ended (epoch ms), if it was (SessionStore's end marker, read alongside). */
  sessionEndedAt: number | undefined;
}

/** Pending challenges and who answered them, in the hot store. */
export interface ChallengeStore {
  /** Keeps `challenge` for `retentionMs` (ms). */
  save(challenge: Challenge, retentionMs: number): Promise<void>;
  /**
   * The challenge, this claim's recorded result, the answering claim and whether the session it was
   * issued to was ended, in one read.
   */
  read(
    challengeId: string,
    claim: string,
    session: { subject: string; sessionId: string },
  ): Promise<ChallengeState>;
  /**
   * Marks the challenge answered by `claim` for `retentionMs` (ms) and, only if it is this claim's
   * (first, or a retry of it), applies `writes` with it, atomically on Redis. Returns the claim that
   * answered the challenge.
   */
  markAnswered(challengeId: string, claim: string, retentionMs: number, writes: HotWrite[]): Promise<string>;
}

export function createChallengeStore(hot: HotStore): ChallengeStore {
  return {
    async save(challenge, retentionMs) {
      await hot.set(hotKeys.challenge(challenge.id), JSON.stringify(challenge), retentionMs);
    },
    async read(challengeId, claim, { subject, sessionId }) {
      const [stored, recorded, answeredBy, endedAt] = await hot.getMany([
        hotKeys.challenge(challengeId),
        hotKeys.verifyResult(challengeId, claim),
        hotKeys.answered(challengeId),
        hotKeys.revoked(subject, sessionId),
      ]);
      return {
        challenge: stored ? (JSON.parse(stored) as Challenge) : undefined,
        recorded: recorded ?? null,
        answeredBy: answeredBy ?? null,
        sessionEndedAt: endedAt === null || endedAt === undefined ? undefined : Number(endedAt),
      };
    },
    markAnswered: (challengeId, claim, retentionMs, writes) =>
      hot.claimThenWrite({ key: hotKeys.answered(challengeId), value: claim, ttlMs: retentionMs }, writes),
  };
}
