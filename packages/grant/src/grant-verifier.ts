import { verify as verifySignature } from "node:crypto";
import { type GrantClaims, grantType, parseGrantClaims } from "./grant-claims.ts";
import { GrantError } from "./grant-error.ts";
import type { Jwk } from "./jwk.ts";
import { createKeySet } from "./key-set.ts";
import type { RevocationCheck } from "./revocation-set.ts";
import { timeClaimFault } from "./time-claims.ts";
import { TransactionError, transactionDigest } from "./transaction.ts";
import { createVerifiedGrantCache } from "./verified-grant-cache.ts";

export interface GrantVerifierOptions {
  // Fetches the current key set (Stepgate's published JWKS).
  keys: () => Promise<Jwk[]>;
  // When set, grants from any other issuer are refused.
  issuer?: string;
  // Allowed clock skew with the issuer, applied to exp, iat, auth_time and maxAgeSeconds. Default 5.
  clockToleranceSeconds?: number;
  // An unknown kid triggers a refetch at most this often. Default 30_000.
  minRefetchIntervalMs?: number;
  // The key set is refetched in the background once it is older than this, so a key the issuer
  // withdrew stops being trusted even while its kid keeps arriving. Default 600_000 (10 minutes).
  maxKeySetAgeMs?: number;
  // How many verified tokens to remember until their exp. Default 10_000; 0 disables the cache.
  cacheSize?: number;
  // The current time in milliseconds, for tests. Default Date.now.
  now?: () => number;
  // Revocations received from Stepgate's feed (revocation-set.ts): a grant one names is refused
  // with GRANT_REVOKED, a token signed by a retired key too. Default: none (valid until exp).
  revocations?: RevocationCheck;
}

// What the caller is about to do: the grant must have been issued for exactly this.
export interface GrantExpectations {
  audience: string;
  action: string;
  subject?: string;
  sessionId?: string;
  // Freshness of the authentication, compared with auth_time (RFC 9470 max_age).
  maxAgeSeconds?: number;
  // Default false: single-use grants must be consumed online with CheckGrant, so offline
  // verification refuses them with GRANT_SINGLE_USE.
  allowSingleUse?: boolean;
  // The transaction about to be executed ({ amount, currency, payee, resource? }, transaction.ts).
  // A grant bound to a transaction (its `txn` claim) passes only with details of the same normal
  // form; without details, or with details for an unbound grant, it is GRANT_TRANSACTION_MISMATCH.
  transaction?: unknown;
}

export interface GrantVerifier {
  // Fetches the key set when the grant's kid is unknown. Rejects with GrantError for a bad grant,
  // and with Error("jwks unavailable") when the key set could not be fetched.
  verify(token: string, expect: GrantExpectations): Promise<GrantClaims>;
  // Same checks, for when the key is already cached: an unknown kid is GRANT_INVALID.
  verifySync(token: string, expect: GrantExpectations): GrantClaims;
}

// Far above a real grant (about 500 characters), low enough that parsing junk costs nothing.
const maxTokenLength = 4096;
// Compact JWS with base64url segments only: the decoders in Node skip or fold other characters,
// which would let the signed bytes and the decoded claims differ. The signature is 64 bytes, and its
// last character must carry zero padding bits, so no second spelling of a token verifies.
const compactJws = /^[\w-]+\.[\w-]+\.[\w-]{85}[AQgw]$/;
const maxHeaders = 64;

export function createGrantVerifier(options: GrantVerifierOptions): GrantVerifier {
  const now = options.now ?? Date.now;
  const tolerance = options.clockToleranceSeconds ?? 5;
  const issuer = options.issuer;
  const cache = createVerifiedGrantCache(options.cacheSize ?? 10_000);
  const keys = createKeySet({
    fetch: options.keys,
    minRefetchIntervalMs: options.minRefetchIntervalMs ?? 30_000,
    now,
    onKeyDropped: (kid) => cache.dropKid(kid),
  });
  const revocations = options.revocations;
  revocations?.onKeyRetired((kid) => cache.dropKid(kid));

  // Header segment -> kid, for headers that passed the checks: one per key in practice, so the
  // header is decoded once per key instead of once per token (3% of a signature check).
  const headers = new Map<string, string>();

  // Returns the verified claims, or undefined when the token names a key that is not cached.
  function authenticate(token: string, nowMs: number): GrantClaims | undefined {
    if (typeof token !== "string") throw invalid("malformed token");
    if (token.length > maxTokenLength) throw invalid("token too large");
    const cached = cache.get(token, nowMs);
    if (cached !== undefined) return cached;
    if (!compactJws.test(token)) throw invalid("malformed token");
    const headerEnd = token.indexOf(".");
    const payloadEnd = token.lastIndexOf(".");
    const header = token.slice(0, headerEnd);
    let kid = headers.get(header);
    if (kid === undefined) {
      kid = readHeader(header);
      // Bounded without eviction: junk headers beyond the bound are only decoded every time.
      if (headers.size < maxHeaders) headers.set(header, kid);
    }
    if (revocations?.keyRetired(kid)) throw new GrantError("GRANT_REVOKED", "signing key retired");
    const key = keys.get(kid);
    if (key === undefined) return undefined;
    // The token is ASCII by now; encoding it whole as UTF-8 takes Node's fast path, a slice as latin1 does not.
    const signed = Buffer.from(token, "utf8").subarray(0, payloadEnd);
    const signature = Buffer.from(token.slice(payloadEnd + 1), "base64url");
    if (!verifySignature(null, signed, key, signature)) throw invalid("bad signature");
    // Claims are parsed only once the signature holds: forged input never reaches JSON.parse.
    const claims = parseGrantClaims(decodeJson(token.slice(headerEnd + 1, payloadEnd)));
    if (claims === undefined) throw invalid("malformed claims");
    if (issuer !== undefined && claims.iss !== issuer) throw invalid("wrong issuer");
    const nowSeconds = nowMs / 1000;
    const timeFault = timeClaimFault(claims, nowSeconds, tolerance);
    if (timeFault !== undefined) throw invalid(timeFault);
    if (nowSeconds >= claims.exp + tolerance) throw new GrantError("GRANT_EXPIRED", "grant expired");
    cache.set(token, claims, kid, (claims.exp + tolerance) * 1000);
    return claims;
  }

  // Runs on every call, cached or not: expectations differ between callers and time moves on.
  function check(claims: GrantClaims, expect: GrantExpectations, nowMs: number): GrantClaims {
    const nowSeconds = nowMs / 1000;
    if (nowSeconds >= claims.exp + tolerance) throw new GrantError("GRANT_EXPIRED", "grant expired");
    if (claims.aud !== expect.audience) throw mismatch("audience mismatch");
    if (claims.action !== expect.action) throw mismatch("action mismatch");
    if (expect.subject !== undefined && claims.sub !== expect.subject) throw mismatch("subject mismatch");
    if (expect.sessionId !== undefined && claims.sid !== expect.sessionId) throw mismatch("session mismatch");
    if (
      expect.maxAgeSeconds !== undefined &&
      nowSeconds - claims.auth_time > expect.maxAgeSeconds + tolerance
    ) {
      throw mismatch("authentication too old");
    }
    checkTransaction(claims.txn, expect.transaction);
    const revoked = revocations?.revoking(claims);
    if (revoked !== undefined) throw new GrantError("GRANT_REVOKED", "grant revoked", revoked);
    // Last, so a grant for another audience or action says so rather than sending the caller online.
    if (claims.single_use === true && expect.allowSingleUse !== true) {
      throw new GrantError("GRANT_SINGLE_USE", "single-use grant needs an online check");
    }
    return claims;
  }

  const maxKeySetAgeMs = options.maxKeySetAgeMs ?? 600_000;
  // Never delays a verification: the refetch runs beside it, and a failure is retried later.
  const refreshIfStale = () => {
    const loadedAt = keys.loadedAt();
    if (loadedAt !== undefined && now() - loadedAt > maxKeySetAgeMs) keys.refresh().catch(() => {});
  };

  return {
    async verify(token, expect) {
      refreshIfStale();
      let claims = authenticate(token, now());
      if (claims === undefined) {
        await keys.refresh();
        claims = authenticate(token, now());
      }
      if (claims === undefined) throw invalid("unknown signing key");
      return check(claims, expect, now());
    },
    verifySync(token, expect) {
      const nowMs = now();
      const claims = authenticate(token, nowMs);
      if (claims === undefined) throw invalid("unknown signing key");
      return check(claims, expect, nowMs);
    },
  };
}

function readHeader(segment: string): string {
  const header = decodeJson(segment);
  if (typeof header !== "object" || header === null) throw invalid("malformed header");
  const { alg, typ, kid, crit } = header as Record<string, unknown>;
  // Only EdDSA: "none", HS256 with the public key as secret and friends are refused outright (RFC 8725 §3.1).
  if (alg !== "EdDSA") throw invalid("unsupported algorithm");
  if (typ !== grantType) throw invalid("not a grant");
  // No extension is understood, so any critical one must be refused (RFC 7515 §4.1.11).
  if (crit !== undefined) throw invalid("unsupported critical header");
  if (typeof kid !== "string") throw invalid("malformed header");
  return kid;
}

// The parser's own error is dropped: its message quotes the input, which is part of the token.
function decodeJson(segment: string): unknown {
  try {
    return JSON.parse(Buffer.from(segment, "base64url").toString("utf8"));
  } catch {
    throw invalid("malformed token");
  }
}

function invalid(message: string): GrantError {
  return new GrantError("GRANT_INVALID", message);
}

function mismatch(message: string): GrantError {
  return new GrantError("GRANT_MISMATCH", message);
}

/**
 * A bound grant's digest against the details the caller is about to execute: both absent, or equal.
 * Details that do not normalise (transaction.ts) cannot match any grant.
 */
function checkTransaction(bound: string | undefined, details: unknown): void {
  if (bound === undefined && details === undefined) return;
  const refuse = (message: string) => new GrantError("GRANT_TRANSACTION_MISMATCH", message);
  if (bound === undefined) throw refuse("grant is not bound to a transaction");
  if (details === undefined) throw refuse("grant is bound to a transaction: pass its details");
  let digest: string;
  try {
    digest = transactionDigest(details);
  } catch (error) {
    if (error instanceof TransactionError) throw refuse(error.message);
    throw error;
  }
  if (digest !== bound) throw refuse("grant is bound to another transaction");
}
