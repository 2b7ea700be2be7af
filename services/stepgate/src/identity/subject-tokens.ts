import { timeClaimFault } from "@stepgate/grant";
import { createRemoteJWKSet, decodeJwt, errors, jwtVerify } from "jose";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { TrustedIssuer } from "../policy/policy.ts";

/** What a verified primary-session token says; `authTime` in seconds since the epoch. */
export interface SubjectToken {
  issuer: string;
  subject: string;
  /** The session it belongs to (OIDC `sid`), when the token carries one. */
  sessionId?: string;
  /** When the user signed in (OIDC `auth_time`), when the token carries it. */
  authTime?: number;
}

/**
 * Verifies a third-party JWT (an OIDC ID token or a JWT access token, RFC 7519/9068): signed by a
 * key its issuer publishes, `iss` a trusted issuer, `aud` one of its audiences, within `exp` and
 * `nbf`, with a `sub`, and times that fail closed (`timeClaimFault` of @stepgate/grant: an `iat`,
 * `auth_time` or `nbf` in the future, in milliseconds or of the wrong type, or an `auth_time` after
 * `iat`, is refused; jose alone checks `iat` only against a maximum token age). Fails with SUBJECT_PROOF_INVALID, or with a DependencyUnavailableError
 * ("identity-provider") when the issuer's JWKS cannot be fetched.
 */
export type VerifySubjectToken = (token: string) => Promise<SubjectToken>;

export interface SubjectTokenOptions {
  issuers: TrustedIssuer[];
  /** Tolerated clock skew with the issuer, in seconds. */
  clockToleranceSeconds: number;
  /** How long an issuer's JWKS answer may take, in ms. */
  jwksTimeoutMs: number;
  /** How long fetched keys are trusted before they are fetched again, in ms; an unknown kid refetches sooner. */
  jwksMaxAgeMs: number;
  /** An unknown kid refetches the JWKS at most this often, in ms. */
  jwksCooldownMs: number;
  /** The time tokens are checked against, in ms since the epoch. Default `Date.now`. */
  clock?: () => number;
}

// Far above a real ID token, far below what would cost anything to refuse.
const maxTokenLength = 8192;
// Asymmetric only: a shared-secret token cannot prove anything to a third party.
const algorithms = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** A verifier over the trusted issuers' published keys (jose: fetched, cached and refreshed per issuer). */
export function createVerifySubjectToken(options: SubjectTokenOptions): VerifySubjectToken {
  const issuers = new Map(
    options.issuers.map((issuer) => [
      issuer.issuer,
      {
        issuer,
        keys: createRemoteJWKSet(new URL(issuer.jwksUri), {
          timeoutDuration: options.jwksTimeoutMs,
          cacheMaxAge: options.jwksMaxAgeMs,
          cooldownDuration: options.jwksCooldownMs,
        }),
      },
    ]),
  );
  const clock = options.clock ?? Date.now;
  return async (token) => {
    const trusted = issuers.get(claimedIssuer(token));
    const nowMs = clock();
    if (!trusted) throw invalid("the subject token's issuer is not trusted");
    try {
      const { payload } = await jwtVerify(token, trusted.keys, {
        issuer: trusted.issuer.issuer,
        audience: trusted.issuer.audiences,
        algorithms,
        clockTolerance: options.clockToleranceSeconds,
        requiredClaims: ["sub", "exp"],
        currentDate: new Date(nowMs),
      });
      const timeFault = timeClaimFault(payload, nowMs / 1000, options.clockToleranceSeconds);
      if (timeFault !== undefined) throw invalid(`the subject token was refused: ${timeFault}`);
      return {
        issuer: trusted.issuer.issuer,
        subject: payload.sub as string,
        ...(typeof payload.sid === "string" ? { sessionId: payload.sid } : {}),
        // A number by now (timeClaimFault refused any other type): absent stays absent, which is stale.
        ...(payload.auth_time === undefined ? {} : { authTime: payload.auth_time as number }),
      };
    } catch (error) {
      throw classify(error);
    }
  };
}

/** The unverified `iss`, only to pick whose keys to verify with. */
function claimedIssuer(token: string): string {
  if (token.length > maxTokenLength) throw invalid("the subject token is too long");
  try {
    const iss = decodeJwt(token).iss;
    if (typeof iss === "string") return iss;
  } catch {
    // Not a JWT at all: refused below like an untrusted issuer.
  }
  throw invalid("the subject token is not a JWT with an issuer");
}

// The token's fault: refused. The issuer's (its JWKS cannot be had): retryable, nothing decided.
const tokenFaults = new Set([
  "ERR_JWT_EXPIRED",
  "ERR_JWT_CLAIM_VALIDATION_FAILED",
  "ERR_JWT_INVALID",
  "ERR_JWS_INVALID",
  "ERR_JWS_SIGNATURE_VERIFICATION_FAILED",
  "ERR_JOSE_ALG_NOT_ALLOWED",
  "ERR_JOSE_NOT_SUPPORTED",
  "ERR_JWKS_NO_MATCHING_KEY",
  "ERR_JWKS_MULTIPLE_MATCHING_KEYS",
]);

function classify(error: unknown): Error {
  if (error instanceof StepgateError) return error;
  if (error instanceof errors.JOSEError && tokenFaults.has(error.code)) {
    // jose's messages name claims and checks only, never token content.
    return invalid(`the subject token was refused: ${error.message}`);
  }
  return new DependencyUnavailableError("identity-provider", "DEPENDENCY_UNAVAILABLE", 1000, {
    cause: error,
  });
}

const invalid = (message: string) => new StepgateError("SUBJECT_PROOF_INVALID", message);
