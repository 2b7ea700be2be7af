import { hash } from "node:crypto";

/** One key: the kind in clear (for operators), the parts hashed so no subject or id appears in a key. */
function hotKey(kind: string, ...parts: string[]): string {
  // One-shot hash: no Hash object per key (several keys per call).
  return `${kind}:${hash("sha256", parts.join("\u0000"), "base64url").slice(0, 32)}`;
}

/**
 * The kinds whose entries are security state that must survive the loss of Redis: mirrored in
 * PostgreSQL and carried back into Redis after an outage (store/hot/resync.ts).
 */
export const durableKinds = ["revoked", "factor-ended", "consumed", "failures"] as const;

/**
 * The kinds of a flow in progress (a challenge, its attempts and answer, recorded results, the
 * elevation it gave, TOTP steps, passkey counters, enrolment confirmations): what PostgreSQL holds of them after an
 * outage is carried into Redis when the calls go back to it, so a user who stepped up during the
 * outage is not asked again (store/hot/resync.ts). The factor cache, rate counters, markers and
 * startup copies are not: they are rebuilt or need no carrying.
 */
export const flowKinds = [
  "challenge",
  "attempts",
  "answered",
  "verify",
  "elevation",
  "totp-step",
  "passkey-counter",
  "passkey-counter-owner",
  "confirm",
] as const;

const flowKindSet: ReadonlySet<string> = new Set(flowKinds);

/** True for a key of `flowKinds`. */
export const isFlowKey = (key: string): boolean => flowKindSet.has(key.slice(0, key.indexOf(":")));

/**
 * Every key of the hot store, built here and nowhere else. Parts are hashed the same way for
 * every kind, so raw subjects, session ids, challenge ids and grant ids never appear in Redis.
 */
export const hotKeys = {
  challenge: (challengeId: string) => hotKey("challenge", challengeId),
  /** Attempts spent at one challenge. */
  challengeAttempts: (challengeId: string) => hotKey("attempts", challengeId),
  /** Who answered a challenge (the winning claim). */
  answered: (challengeId: string) => hotKey("answered", challengeId),
  /** The recorded result of one Verify call (challenge and the claim of its idempotency key). */
  verifyResult: (challengeId: string, claim: string) => hotKey("verify", challengeId, claim),
  /** A subject's run of consecutive failures. */
  failures: (subject: string) => hotKey("failures", subject),
  elevation: (subject: string, sessionId: string, acr: string) =>
    hotKey("elevation", subject, sessionId, acr),
  /** When a session was ended (revokes its grants). */
  revoked: (subject: string, sessionId: string) => hotKey("revoked", subject, sessionId),
  /** When a factor was removed or replaced (ends its elevations, revokes its grants). */
  factorEnded: (factorId: string) => hotKey("factor-ended", factorId),
  /** A single-use or management grant that was spent. */
  consumedGrant: (grantId: string) => hotKey("consumed", grantId),
  /** Codes tried while confirming one enrolment. */
  confirmAttempts: (factorId: string) => hotKey("confirm", factorId),
  /**
   * The unhashed key releases before hashed keys used for a spent grant. Still read, so a grant
   * spent on an older replica stays spent during a rolling upgrade; drop it one release later.
   */
  legacyConsumedGrant: (grantId: string) => `consumed:${grantId}`,
  /** A subject's factors, sealed, as last read from PostgreSQL (versioned). */
  factorCache: (subject: string) => hotKey("factors", subject),
  /** The latest TOTP time step accepted for a factor, and the claim that took it. */
  totpStep: (factorId: string) => hotKey("totp-step", factorId),
  /** The claim that took one TOTP time step of a factor, kept after later steps are taken. */
  totpStepOwner: (factorId: string, step: number) => hotKey("totp-step-owner", factorId, String(step)),
  /** The latest signature counter accepted for a passkey, and the claim that took it. */
  passkeyCounter: (factorId: string) => hotKey("passkey-counter", factorId),
  /** The claim that took one passkey counter value, kept after later ones are taken. */
  passkeyCounterOwner: (factorId: string, counter: number) =>
    hotKey("passkey-counter-owner", factorId, String(counter)),
  /** What a replica needs to start while PostgreSQL is down (sealed signing keys, sealed secrets). */
  startupCopy: (name: string) => hotKey("startup", name),
  /**
   * The audit outbox: one Redis stream of events on their way to PostgreSQL, for the whole fleet.
   * Entries hold an event's subject and details (never a secret), as challenges hold their subject.
   */
  auditOutbox: () => "audit-outbox",
  /** A rate limit's counter for one subject, calling service or client address (`limit` names which). */
  rateLimit: (limit: string, id: string) => hotKey("rate", limit, id),
  /** A one-time marker, e.g. a test fault fired once per challenge across the fleet. */
  marker: (name: string, id: string) => hotKey("marker", name, id),
} as const;
