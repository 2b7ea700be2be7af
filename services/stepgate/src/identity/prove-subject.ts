import { timeClaimFault } from "@stepgate/grant";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { Policy } from "../policy/policy.ts";
import type { SubjectToken, VerifySubjectToken } from "./subject-tokens.ts";

/** A call's claim about the user, and the primary-session token that may prove it. */
export interface SubjectClaim {
  caller: string;
  subject: string;
  /** The session the call names, if any. */
  sessionId?: string;
  /** The `stepgate-subject-token` header; undefined when the caller sent none. */
  token: string | undefined;
}

/**
 * Checks a call's subject against the caller's token: verified when sent (then its `sub`, and its
 * `sid` where both name one, must be the call's), required when the policy says so for this
 * caller. Resolves to the verified token, or undefined when none was sent and none is required.
 * Fails with SUBJECT_PROOF_REQUIRED, SUBJECT_PROOF_INVALID (also when no issuer is trusted),
 * SUBJECT_PROOF_MISMATCH, or a DependencyUnavailableError while the issuer's keys cannot be fetched.
 */
export type ProveSubject = (claim: SubjectClaim) => Promise<SubjectToken | undefined>;

export interface ProveSubjectDeps {
  policy: Pick<Policy, "callerScopes">;
  /** Undefined when the policy trusts no issuer (insecure development mode only). */
  verifyToken: VerifySubjectToken | undefined;
}

export function createProveSubject({ policy, verifyToken }: ProveSubjectDeps): ProveSubject {
  return async ({ caller, subject, sessionId, token }) => {
    if (token === undefined || token === "") {
      if (policy.callerScopes?.get(caller)?.subjectProof === "required") {
        throw new StepgateError(
          "SUBJECT_PROOF_REQUIRED",
          "this caller must prove the subject with a subject token",
        );
      }
      return undefined;
    }
    if (!verifyToken) throw new StepgateError("SUBJECT_PROOF_INVALID", "no identity provider is trusted");
    const proven = await verifyToken(token);
    if (proven.subject !== subject) {
      throw new StepgateError("SUBJECT_PROOF_MISMATCH", "the subject token is for another subject");
    }
    if (
      sessionId !== undefined &&
      sessionId !== "" &&
      proven.sessionId !== undefined &&
      proven.sessionId !== sessionId
    ) {
      throw new StepgateError("SUBJECT_PROOF_MISMATCH", "the subject token is for another session");
    }
    return proven;
  };
}

/**
 * A first factor binds only to a user who just signed in: a proven subject whose `auth_time` is at
 * most `maxAgeSeconds` (plus `toleranceSeconds` of skew) old. Fails closed: SUBJECT_PROOF_REQUIRED
 * without a proof, SUBJECT_PROOF_STALE with an old or missing `auth_time`, SUBJECT_PROOF_INVALID
 * with one later than now plus the tolerance or not a time in seconds (milliseconds, say), which
 * `now - auth_time` would otherwise read as fresh.
 */
export function assertFreshSignIn(
  proof: SubjectToken | undefined,
  nowSeconds: number,
  maxAgeSeconds: number,
  toleranceSeconds: number,
): void {
  if (!proof) {
    throw new StepgateError(
      "SUBJECT_PROOF_REQUIRED",
      "a first factor needs a subject token from a recent sign-in",
    );
  }
  const fault = timeClaimFault({ auth_time: proof.authTime }, nowSeconds, toleranceSeconds);
  if (fault !== undefined)
    throw new StepgateError("SUBJECT_PROOF_INVALID", `the subject token was refused: ${fault}`);
  if (proof.authTime === undefined || nowSeconds - proof.authTime > maxAgeSeconds + toleranceSeconds) {
    throw new StepgateError(
      "SUBJECT_PROOF_STALE",
      "a first factor needs a sign-in more recent than the policy allows",
    );
  }
}

/** Audit details of a subject proof: its issuer and sign-in time (`auth_time`, s), never the token. */
export function provenBy(proof: SubjectToken | undefined): { proven_by?: string; auth_time?: number } {
  if (!proof) return {};
  return { proven_by: proof.issuer, ...(proof.authTime === undefined ? {} : { auth_time: proof.authTime }) };
}
