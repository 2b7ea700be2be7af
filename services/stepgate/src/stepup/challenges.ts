import type { MethodName } from "../config/policy.ts";
import { randomToken } from "../crypto/random-id.ts";
import type { SealedTotp } from "../factors/factor-store.ts";
import type { HotStore } from "../store/hot-store.ts";

/** A pending request for a second factor, bound to who asked and for what. */
export interface Challenge {
  id: string;
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
  acr: string;
  methods: MethodName[];
  expiresAt: number;
  /**
   * The subject's TOTP factors when the challenge was issued, secrets still sealed, so Verify
   * needs no factor lookup. A factor removed since cannot be used: accepting a code claims its row.
   */
  totp?: SealedTotp[];
}

// Kept past expiry so a late answer hears "expired" rather than "not found".
const graceMs = 10 * 60_000;

export interface Challenges {
  create(fields: Omit<Challenge, "id">): Promise<Challenge>;
  /** The hot-store key of a challenge, for callers that batch it with other reads. */
  keyOf(id: string): string;
  /** A challenge from its stored form, as read under `keyOf(id)`. */
  parse(stored: string | null): Challenge | undefined;
  /** How long the challenge's records must be kept, from now. */
  retentionMs(challenge: Challenge, nowMs: number): number;
}

export function createChallenges(hot: HotStore): Challenges {
  const keyOf = (id: string) => `challenge:${id}`;
  const retentionMs = (c: Challenge, nowMs: number) => Math.max(1000, c.expiresAt - nowMs + graceMs);
  const parse = (v: string | null) => (v === null ? undefined : (JSON.parse(v) as Challenge));
  return {
    retentionMs,
    keyOf,
    parse,
    async create(fields) {
      const challenge = { id: randomToken(), ...fields };
      await hot.set(keyOf(challenge.id), JSON.stringify(challenge), retentionMs(challenge, Date.now()));
      return challenge;
    },
  };
}
