import type { AuditLog } from "../audit/audit-log.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import type { Factor } from "../domain/factor.ts";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { managementActions } from "../policy/policy.ts";
import type { AttemptCounters } from "../store/attempt-counters.ts";
import { confirmationClaim, type FactorStore } from "../store/factor-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { TotpStepClaims } from "../store/totp-step-claims.ts";
import { type AuthorizeChange, authorizeActivation } from "./authorize-change.ts";
import { confirmWindowMs } from "./enroll-totp.ts";
import { matchTotp } from "./totp.ts";
import { openTotpSecret } from "./totp-secret.ts";

const confirmAttempts = 5;

export interface ConfirmTotpInput {
  subject: string;
  factorId: string;
  /** Six digits from the authenticator app. */
  code: string;
  caller: string;
  /** A grant for stepgate.enroll_totp, or "": needed when the enrolment's own authorisation no longer holds. */
  grant: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs a fresh one. */
  proof?: SubjectToken | undefined;
}

/**
 * Activates a pending TOTP factor with a code from it; its step is claimed, so the code cannot
 * answer a challenge afterwards. The factor becomes active only under an authorisation that holds
 * at that moment (STATE-CHANGES.md): the grant its enrolment spent, while not revoked; a grant
 * sent with the confirmation; or, while the subject still has no active factor, a fresh sign-in,
 * as for a first enrolment (checked atomically with the activation). A retry of a confirmation
 * that succeeded (same code) answers the factor again. Fails with FACTOR_NOT_FOUND, FACTOR_STATE
 * (already active, or the 10-minute window passed), WRONG_CODE, CHALLENGE_LOCKED after 5 codes,
 * GRANT_REQUIRED (the subject has an active factor now), GRANT_REVOKED, or a reason of AuthorizeChange.
 */
export type ConfirmTotp = (input: ConfirmTotpInput) => Promise<Factor>;

export interface ConfirmTotpDeps {
  factors: Pick<FactorStore, "find" | "activate" | "confirmedStep">;
  attempts: Pick<AttemptCounters, "countConfirmation">;
  stepClaims: TotpStepClaims;
  /** Checks the authorisation at confirmation time, as EnrollTotp does at enrolment. */
  authorizeChange: AuthorizeChange;
  /** Tells whether the grant an enrolment spent was revoked since. */
  sessions: Pick<SessionStore, "revocations">;
  keyRing: KeyRing;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  clock: Clock;
}

export function createConfirmTotp(deps: ConfirmTotpDeps): ConfirmTotp {
  return async (input) => {
    const { subject, factorId, code, caller } = input;
    const factor = await deps.factors.find(subject, factorId);
    assertThat(factor && factor.method === "totp" && factor.secret, "FACTOR_NOT_FOUND", "no such factor");
    const now = deps.clock();
    const secret = openTotpSecret(deps.keyRing, factorId, subject, factor.secret);
    if (factor.status === "active")
      return confirmedAgain(deps, factor, matchTotp(secret, code, toSeconds(now)));
    assertThat(
      factor.confirmBy && factor.confirmBy.getTime() > now,
      "FACTOR_STATE",
      "enrolment expired; enrol again",
    );
    const used = await deps.attempts.countConfirmation(factorId, confirmWindowMs);
    assertThat(used <= confirmAttempts, "CHALLENGE_LOCKED", "no attempts left; enrol again", {
      metadata: { attempts_remaining: "0" },
    });
    const step = matchTotp(secret, code, toSeconds(now));
    if (step === undefined) {
      throw new StepgateError("WRONG_CODE", "wrong code", {
        metadata: { attempts_remaining: String(confirmAttempts - used) },
      });
    }
    // After the code: a grant sent with the confirmation is spent only on a right one.
    const authorization = await authorizeActivation(deps, {
      ...{ subject, caller, grant: input.grant, proof: input.proof },
      action: managementActions.enrollTotp,
      enrolledUnder: factor.authorizedBy,
    });
    const activated = await deps.factors.activate({
      ...{ subject, factorId, step, now: new Date(now) },
      onlyFirst: authorization.kind === "first_factor",
    });
    assertThat(activated !== "subject_has_factor", "GRANT_REQUIRED", subjectHasFactor);
    assertThat(activated === "activated", "FACTOR_STATE", "factor is no longer pending");
    // The hot store's copy of claimed steps learns the confirming code too, so it cannot answer a
    // challenge while PostgreSQL is down (best effort: PostgreSQL holds it already).
    await deps.stepClaims.claim(factorId, step, confirmationClaim(factorId)).catch(() => {});
    await deps.refreshEnrolled(subject);
    await deps.audit.record({
      type: "factor.confirmed",
      subject,
      caller,
      details: { factor_id: factorId, authorized_by: authorization.kind },
    });
    return (await deps.factors.find(subject, factorId)) as Factor;
  };
}

const subjectHasFactor = `the subject has an active factor now: confirming needs a grant for ${managementActions.enrollTotp}`;

/** A confirmation sent again after it succeeded (its reply was lost): the same code answers the factor again. */
async function confirmedAgain(
  deps: ConfirmTotpDeps,
  factor: Factor,
  step: number | undefined,
): Promise<Factor> {
  const confirmed = step === undefined ? undefined : await deps.factors.confirmedStep(factor.id);
  assertThat(step !== undefined && step === confirmed, "FACTOR_STATE", "factor is already confirmed");
  return factor;
}
