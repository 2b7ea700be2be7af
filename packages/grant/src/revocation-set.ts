import { createHash } from "node:crypto";
import type { GrantClaims } from "./grant-claims.ts";

/** What a revocation ends (the feed's RevocationKind, in words). */
export type RevocationKind = "session_ended" | "factor_ended" | "grant_consumed" | "key_retired";

/** One revocation as the feed delivers it (RevocationFeedService.WatchRevocations). */
export interface Revocation {
  kind: RevocationKind;
  /**
   * session_ended: `sessionRevocationKey(sub, sid)`; factor_ended: the grants' `fid`;
   * grant_consumed: the grant's `jti`; key_retired: the signing key's `kid`.
   */
  target: string;
  /** After this (ms since the epoch) no grant it concerns can be valid: it is forgotten then. */
  expiresAtMs: number;
}

/**
 * The digest that names a session in the revocation feed: SHA-256 over "stepgate-session-v1", the
 * grant's `sub` and its `sid`, each length-prefixed, in base64url (43 characters). A verifier
 * computes it from the claims; the feed never carries a subject in the clear.
 */
export function sessionRevocationKey(subject: string, sessionId: string): string {
  const hash = createHash("sha256").update("stepgate-session-v1");
  for (const part of [subject, sessionId]) {
    const bytes = Buffer.from(part, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    hash.update(length).update(bytes);
  }
  return hash.digest("base64url");
}

/** What the grant verifier asks of a revocation source (GrantVerifierOptions.revocations). */
export interface RevocationCheck {
  /** The revocation that ends this grant, if one was received and has not expired. */
  revoking(claims: GrantClaims): RevocationKind | undefined;
  /** True when the signing key `kid` was retired. */
  keyRetired(kid: string): boolean;
  /** Told of each retired key, so verified tokens it signed are forgotten. */
  onKeyRetired(listener: (kid: string) => void): void;
}

/** Revocations received from the feed, each kept until its `expiresAtMs`. */
export interface RevocationSet extends RevocationCheck {
  /** Records `revocation`; one already expired is ignored. */
  add(revocation: Revocation): void;
  /** How many revocations are kept. */
  readonly size: number;
}

/**
 * An in-memory set of revocations, by kind and target. Expired entries are dropped as the set is
 * used (at most once a second, in one pass), so it holds about as many entries as revocations of
 * still-valid grants: one Map entry each. Looking a grant up costs one SHA-256 (its session digest,
 * remembered per `jti`) and three Map lookups.
 */
export function createRevocationSet(now: () => number = Date.now): RevocationSet {
  const entries = new Map<string, number>();
  const sessionKeys = new Map<string, string>();
  const keyListeners: ((kid: string) => void)[] = [];
  let sweptAt = 0;
  const sweep = (nowMs: number) => {
    if (nowMs - sweptAt < 1000) return;
    sweptAt = nowMs;
    for (const [key, expiresAt] of entries) if (expiresAt <= nowMs) entries.delete(key);
    // Session digests are only a cache: rebuilt on demand.
    if (sessionKeys.size > 100_000) sessionKeys.clear();
  };
  const live = (key: string, nowMs: number) => {
    const expiresAt = entries.get(key);
    return expiresAt !== undefined && expiresAt > nowMs;
  };
  const sessionKeyOf = (claims: GrantClaims) => {
    let key = sessionKeys.get(claims.jti);
    if (key === undefined) {
      key = sessionRevocationKey(claims.sub, claims.sid);
      sessionKeys.set(claims.jti, key);
    }
    return key;
  };
  return {
    add(revocation) {
      const nowMs = now();
      if (revocation.expiresAtMs <= nowMs) return;
      const key = `${revocation.kind}:${revocation.target}`;
      entries.set(key, Math.max(entries.get(key) ?? 0, revocation.expiresAtMs));
      if (revocation.kind === "key_retired") for (const listener of keyListeners) listener(revocation.target);
      sweep(nowMs);
    },
    revoking(claims) {
      if (entries.size === 0) return undefined;
      const nowMs = now();
      sweep(nowMs);
      if (live(`grant_consumed:${claims.jti}`, nowMs)) return "grant_consumed";
      if (claims.fid !== undefined && live(`factor_ended:${claims.fid}`, nowMs)) return "factor_ended";
      if (live(`session_ended:${sessionKeyOf(claims)}`, nowMs)) return "session_ended";
      return undefined;
    },
    keyRetired: (kid) => entries.size > 0 && live(`key_retired:${kid}`, now()),
    onKeyRetired(listener) {
      keyListeners.push(listener);
    },
    get size() {
      return entries.size;
    },
  };
}
