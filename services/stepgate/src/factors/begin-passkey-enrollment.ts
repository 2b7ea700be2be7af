import type { AuditLog } from "../audit/audit-log.ts";
import { newId } from "../crypto/random-id.ts";
import type { Clock } from "../domain/clock.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import { provenBy } from "../identity/prove-subject.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { managementActions, type Policy, relyingPartyFor } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { PasskeyStore } from "../store/passkey-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";
import { confirmWindowMs } from "./enroll-totp.ts";
import { creationOptionsJson } from "./passkey-options.ts";

const maxPendingPerSubject = 5;

export interface BeginPasskeyEnrollmentInput {
  subject: string;
  /** Shown in factor lists. */
  label: string;
  /** The account name the authenticator shows. */
  userName: string;
  /** "" for `userName`. */
  displayName: string;
  /** A grant for stepgate.enroll_passkey; required once the subject has an active factor. */
  grant: string;
  caller: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs it. */
  proof?: SubjectToken | undefined;
  /** The call's idempotency key ("" for none): a retry may spend the same grant again. */
  idempotencyKey?: string;
}

/** A pending passkey: the options for `navigator.credentials.create()`, as JSON text. */
export interface BegunPasskey {
  factorId: string;
  creationOptionsJson: string;
  confirmBy: Date;
}

/**
 * Starts a passkey enrolment at the caller's relying party (the policy's `callers.<name>.webauthn`,
 * else its `webauthn`): a pending factor and the creation options, whose challenge is derived from
 * the factor, subject and caller, so no other state is kept. Authorised as EnrollTotp is (a first
 * factor with a fresh sign-in, later ones with a grant for `stepgate.enroll_passkey`), and checked
 * again when it is finished. A subject keeps at most 5 unfinished enrolments of any kind. Fails with
 * METHOD_NOT_ALLOWED (the policy offers no passkeys, or names no relying party for the caller),
 * GRANT_REQUIRED or a reason of AuthorizeChange.
 */
export type BeginPasskeyEnrollment = (input: BeginPasskeyEnrollmentInput) => Promise<BegunPasskey>;

export interface BeginPasskeyEnrollmentDeps {
  factors: Pick<FactorStore, "deleteExpiredPending" | "dropOldestPending">;
  passkeys: Pick<PasskeyStore, "insertPending" | "credentialIds">;
  authorizeChange: AuthorizeChange;
  policy: Pick<Policy, "methods" | "actions" | "relyingParties" | "defaultRelyingParty">;
  audit: Pick<AuditLog, "record">;
  clock: Clock;
  /** The fleet's passkey challenge key (32 bytes). */
  challengeKey: Uint8Array;
}

export function createBeginPasskeyEnrollment(deps: BeginPasskeyEnrollmentDeps): BeginPasskeyEnrollment {
  // Attestation is asked for only where an action checks the authenticator's model.
  const attestation = [...deps.policy.actions.values()].some((a) => (a.passkey.aaguids ?? []).length > 0);
  return async (input) => {
    const { subject, caller, grant, proof, idempotencyKey = "" } = input;
    const relyingParty = relyingPartyFor(deps.policy, caller);
    assertThat(
      deps.policy.methods.passkey && relyingParty,
      "METHOD_NOT_ALLOWED",
      "the policy offers no passkeys to this caller (methods.passkey and a webauthn relying party)",
    );
    const authorizedBy = await deps.authorizeChange({
      ...{ subject, caller, grant, proof, idempotencyKey },
      action: managementActions.enrollPasskey,
    });
    const now = deps.clock();
    await deps.factors.deleteExpiredPending(subject, new Date(now));
    const dropped = await deps.factors.dropOldestPending(subject, maxPendingPerSubject - 1);
    const id = newId();
    const confirmBy = new Date(now + confirmWindowMs);
    const options = await creationOptionsJson({
      relyingParty,
      key: deps.challengeKey,
      binding: enrolmentBinding(id, subject, caller),
      userName: input.userName,
      displayName: input.displayName || input.userName,
      exclude: await deps.passkeys.credentialIds(subject, relyingParty.id),
      timeoutMs: confirmWindowMs,
      attestation,
    });
    await deps.passkeys.insertPending({
      id,
      subject,
      label: input.label,
      createdAt: new Date(now),
      confirmBy,
      authorizedBy,
    });
    await deps.audit.record({
      type: "factor.enrolled",
      subject,
      caller,
      details: {
        factor_id: id,
        method: "passkey",
        rp_id: relyingParty.id,
        ...(dropped.length > 0 ? { dropped_pending: dropped } : {}),
        ...provenBy(proof),
      },
    });
    return { factorId: id, creationOptionsJson: options, confirmBy };
  };
}

/** What an enrolment's WebAuthn challenge is bound to: the pending factor, its subject and caller. */
export const enrolmentBinding = (factorId: string, subject: string, caller: string) => ({
  challengeId: factorId,
  subject,
  sessionId: "",
  action: managementActions.enrollPasskey,
  caller,
});
