import type { Challenge } from "../domain/challenge.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { hotKeys } from "./hot-keys.ts";

/** What Verify needs to decide, read together. */
export interface ChallengeState {
  challenge: Challenge | undefined;
  /** The result recorded for this call's claim (see VerifyResults), or null. */
  recorded: string | null;
  /** The claim of the call that answered the challenge, or null while unanswered. */
  answeredBy: string | null;
}

/** Pending challenges and who answered them, in the hot store. */
export interface ChallengeStore {
  /** Keeps `challenge` for `retentionMs` (ms). */
  save(challenge: Challenge, retentionMs: number): Promise<void>;
  /** The challenge, this claim's recorded result and the answering claim, in one round trip. */
  read(challengeId: string, claim: string): Promise<ChallengeState>;
  /** Marks the challenge answered by `claim` for `retentionMs`; true if this call was first. */
  markAnswered(challengeId: string, claim: string, retentionMs: number): Promise<boolean>;
  /** The claim that answered the challenge, or null. */
  answeredBy(challengeId: string): Promise<string | null>;
}

export function createChallengeStore(hot: HotStore): ChallengeStore {
  return {
    async save(challenge, retentionMs) {
      await hot.set(hotKeys.challenge(challenge.id), JSON.stringify(challenge), retentionMs);
    },
    async read(challengeId, claim) {
      const [stored, recorded, answeredBy] = await hot.getMany([
        hotKeys.challenge(challengeId),
        hotKeys.verifyResult(challengeId, claim),
        hotKeys.answered(challengeId),
      ]);
      return {
        challenge: stored ? (JSON.parse(stored) as Challenge) : undefined,
        recorded: recorded ?? null,
        answeredBy: answeredBy ?? null,
      };
    },
    markAnswered: (challengeId, claim, retentionMs) =>
      hot.setIfAbsent(hotKeys.answered(challengeId), claim, retentionMs),
    answeredBy: (challengeId) => hot.get(hotKeys.answered(challengeId)),
  };
}
