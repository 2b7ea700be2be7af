import type { MethodName } from "./method.ts";
import type { PasskeyRecord } from "./passkey.ts";

/** A TOTP factor's id and its secret, still sealed (base64): safe to keep in the hot store. */
export interface SealedTotp {
  id: string;
  sealed: string;
}

/** A pending request for a second factor, bound to who asked and for what. */
export interface Challenge {
  /** Opaque, unguessable (128 bits, base64url). */
  id: string;
  subject: string;
  sessionId: string;
  action: string;
  /** The calling service that asked; only it may answer. */
  caller: string;
  /** The assurance level (RFC 9470 acr) the action needs. */
  acr: string;
  methods: MethodName[];
  /** Epoch ms. */
  expiresAt: number;
  /** Epoch ms; a session ended at or after it ends the challenge too. */
  issuedAt?: number;
  /**
   * The subject's TOTP factors when the challenge was issued, secrets still sealed, so Verify
   * needs no factor lookup. A factor removed since cannot be used: accepting a code claims its row.
   */
  totp?: SealedTotp[];
  /**
   * The passkeys that may answer, as the challenge saw them (the caller's relying party, those the
   * action accepts), so Verify needs no factor lookup, also while PostgreSQL is down.
   */
  passkeys?: PasskeyRecord[];
  /** For an action that binds its grants: the transaction's digest (`txn`) and the line the user sees. */
  transaction?: { digest: string; summary: string };
  /** The policy rule that set the requirement (policy/requirement.ts); absent for the action's own. */
  rule?: string;
  /** Keyed hashes of the facts a successful answer records (stepup/subject-facts.ts). */
  facts?: string[];
}

// Kept past expiry so a late answer hears "expired" rather than "not found".
const challengeGraceMs = 10 * 60_000;

/** How long a challenge and its attempts, answer and results must be kept from `nowMs`, in ms (at least 1 s). */
export function challengeRetentionMs(challenge: Challenge, nowMs: number): number {
  return Math.max(1000, challenge.expiresAt - nowMs + challengeGraceMs);
}
