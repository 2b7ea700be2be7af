import type { RevocationKind } from "@stepgate/grant";

export type { RevocationKind };

/**
 * A revocation offline verifiers must learn of (the feed, RevocationFeedService): what it ends
 * (`kind`, `target`, as @stepgate/grant's Revocation says), when (ms since the epoch), and until
 * when a grant it concerns could still be valid.
 */
export interface RevocationEvent {
  /** Unique (random, or derived from what it ends when every replica may record it): stored once. */
  id: string;
  kind: RevocationKind;
  target: string;
  revokedAtMs: number;
  expiresAtMs: number;
}

/** A revocation as the feed's source holds it: with its place in the feed (the cursor). */
export interface StoredRevocation extends RevocationEvent {
  seq: bigint;
}
