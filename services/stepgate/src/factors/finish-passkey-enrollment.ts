import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../domain/clock.ts";
import type { Factor } from "../domain/factor.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { managementActions, type Policy, relyingPartyFor } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { PasskeyStore } from "../store/passkey-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import { type AuthorizeChange, authorizeActivation } from "./authorize-change.ts";
import { enrolmentBinding } from "./begin-passkey-enrollment.ts";
import { type Passkeyed, passkeyChallenge, passkeyError } from "./passkey.ts";
import { type Enrolled, verifyEnrollment } from "./passkey-ceremonies.ts";

export interface FinishPasskeyEnrollmentInput {
  subject: string;
  factorId: string;
  /** The browser's `PublicKeyCredential.toJSON()` of the new credential, as JSON text. */
  attestationJson: string;
  caller: string;
  /** A grant for stepgate.enroll_passkey, or "": needed when the enrolment's own authorisation no longer holds. */
  grant: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs a fresh one. */
  proof?: SubjectToken | undefined;
}

/**
 * Activates a pending passkey with the browser's registration response (WebAuthn 7.1, checked by
 * factors/passkey-ceremonies.ts `verifyEnrollment`), storing its credential. Like ConfirmTotp, the
 * factor becomes active only under an authorisation that holds at that moment (STATE-CHANGES.md).
 * A refused response changes nothing; the same registration sent again after it succeeded answers
 * the factor again, so a finish lost with its replica can be retried. Fails with FACTOR_NOT_FOUND,
 * FACTOR_STATE (already active with another registration, or the 10-minute window passed),
 * PASSKEY_MALFORMED, PASSKEY_REFUSED (refusal wrong_type, wrong_challenge, wrong_origin, wrong_rp,
 * attestation_unsupported, aaguid_not_allowed, bad_signature, or already_registered: the relying
 * party has this credential), METHOD_NOT_ALLOWED (no relying party for the caller),
 * GRANT_REQUIRED, GRANT_REVOKED or a reason of AuthorizeChange.
 */
export type FinishPasskeyEnrollment = (input: FinishPasskeyEnrollmentInput) => Promise<Factor>;

export interface FinishPasskeyEnrollmentDeps {
  factors: Pick<FactorStore, "find">;
  passkeys: Pick<PasskeyStore, "activate" | "credentialOf">;
  authorizeChange: AuthorizeChange;
  /** Tells whether the grant an enrolment spent was revoked since. */
  sessions: Pick<SessionStore, "revocations">;
  policy: Pick<Policy, "methods" | "relyingParties" | "defaultRelyingParty">;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  clock: Clock;
  /** The fleet's passkey challenge key (32 bytes). */
  challengeKey: Uint8Array;
}

export function createFinishPasskeyEnrollment(deps: FinishPasskeyEnrollmentDeps): FinishPasskeyEnrollment {
  return async (input) => {
    const { subject, factorId, caller } = input;
    const factor = await deps.factors.find(subject, factorId);
    assertThat(factor && factor.method === "passkey", "FACTOR_NOT_FOUND", "no such factor");
    const relyingParty = relyingPartyFor(deps.policy, caller);
    assertThat(
      deps.policy.methods.passkey && relyingParty,
      "METHOD_NOT_ALLOWED",
      "the policy offers no passkeys to this caller",
    );
    const verified = await verifyEnrollment({
      responseJson: input.attestationJson,
      challenge: passkeyChallenge(deps.challengeKey, enrolmentBinding(factorId, subject, caller)),
      relyingParty,
      requirement: { userVerification: false, deviceBound: false },
    });
    if (factor.status === "active") return finishedAgain(deps, factor, verified);
    const now = deps.clock();
    assertThat(
      factor.confirmBy && factor.confirmBy.getTime() > now,
      "FACTOR_STATE",
      "enrolment expired; enrol again",
    );
    if (!verified.ok) throw passkeyError(verified.refusal);
    const authorization = await authorizeActivation(deps, {
      ...{ subject, caller, grant: input.grant, proof: input.proof },
      action: managementActions.enrollPasskey,
      enrolledUnder: factor.authorizedBy,
    });
    const { credential, format, transports, userVerified } = verified.value;
    const activated = await deps.passkeys.activate({
      ...{ subject, factorId, rpId: credential.rpId, credentialId: credential.credentialId },
      ...{
        publicKey: credential.publicKey,
        counter: credential.counter,
        backupEligible: credential.backupEligible,
      },
      ...{ aaguid: credential.aaguid, transports, attestationFormat: format },
      now: new Date(now),
      onlyFirst: authorization.kind === "first_factor",
    });
    assertThat(
      activated !== "subject_has_factor",
      "GRANT_REQUIRED",
      `the subject has an active factor now: finishing needs a grant for ${managementActions.enrollPasskey}`,
    );
    if (activated === "already_registered") throw passkeyError("already_registered");
    assertThat(activated === "activated", "FACTOR_STATE", "factor is no longer pending");
    await deps.refreshEnrolled(subject);
    await deps.audit.record({
      type: "factor.confirmed",
      subject,
      caller,
      details: {
        factor_id: factorId,
        method: "passkey",
        authorized_by: authorization.kind,
        rp_id: credential.rpId,
        aaguid: credential.aaguid,
        attestation: format,
        backup_eligible: credential.backupEligible,
        user_verified: userVerified,
      },
    });
    return (await deps.factors.find(subject, factorId)) as Factor;
  };
}

/**
 * A finish sent again after it succeeded (its reply was lost): the same registration, made for this
 * enrolment's challenge, answers the factor again; anything else is FACTOR_STATE.
 */
async function finishedAgain(
  deps: FinishPasskeyEnrollmentDeps,
  factor: Factor,
  verified: Passkeyed<Enrolled>,
): Promise<Factor> {
  const stored = verified.ok ? await deps.passkeys.credentialOf(factor.subject, factor.id) : undefined;
  assertThat(
    verified.ok && stored === verified.value.credential.credentialId,
    "FACTOR_STATE",
    "passkey is already enrolled",
  );
  return factor;
}
