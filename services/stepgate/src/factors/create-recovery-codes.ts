import type { AuditLog } from "../audit/audit-log.ts";
import { newId } from "../crypto/random-id.ts";
import type { Clock } from "../domain/clock.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import { provenBy } from "../identity/prove-subject.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { factorRevocationLifetimeMs } from "../policy/assurance.ts";
import { managementActions, type Policy } from "../policy/policy.ts";
import type { PublishRevocations } from "../revocations/publish-revocation.ts";
import { factorEnded } from "../revocations/revocation-events.ts";
import type { RecoveryCodeStore } from "../store/recovery-code-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";
import { hashRecoveryCode, newRecoveryCodes, newRecoverySalt } from "./recovery-codes.ts";

export interface CreateRecoveryCodesInput {
  subject: string;
  /** A grant for stepgate.create_recovery_codes; required once the subject has an active factor. */
  grant: string;
  caller: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs it. */
  proof?: SubjectToken | undefined;
  /** The call's idempotency key ("" for none): a retry may spend the same grant again. */
  idempotencyKey?: string;
}

/**
 * Replaces the subject's recovery codes with ten new ones, shown once and stored only as salted
 * scrypt hashes (NIST SP 800-63B 5.1.2). The old set ends as a removed factor does: elevations it
 * produced stop counting and their grants are revoked. The codes are usable at once, so the
 * authorisation is checked now, and a first factor's (a fresh sign-in, no grant) only while the
 * subject has no active factor, atomically with storing them. A retry with the same idempotency
 * key makes another set on the same grant (the first one never reached the user). Fails with
 * GRANT_REQUIRED or a reason of AuthorizeChange.
 */
export type CreateRecoveryCodes = (
  input: CreateRecoveryCodesInput,
) => Promise<{ factorId: string; codes: string[] }>;

export interface CreateRecoveryCodesDeps {
  recoveryCodes: Pick<RecoveryCodeStore, "activeSet" | "replaceSet">;
  /** Where the old set's end is recorded, which ends its elevations and grants. */
  sessions: Pick<SessionStore, "endFactor">;
  policy: Policy;
  authorizeChange: AuthorizeChange;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  clock: Clock;
  /** Tells offline verifiers (the revocation feed). */
  publishRevocations: PublishRevocations;
}

export function createCreateRecoveryCodes(deps: CreateRecoveryCodesDeps): CreateRecoveryCodes {
  const revocationTtlMs = factorRevocationLifetimeMs(deps.policy);
  return async ({ subject, grant, caller, proof, idempotencyKey = "" }) => {
    const authorization = await deps.authorizeChange({
      ...{ subject, caller, grant, proof, idempotencyKey },
      action: managementActions.createRecoveryCodes,
    });
    const codes = newRecoveryCodes();
    const salt = newRecoverySalt();
    const hashes = await Promise.all(codes.map((c) => hashRecoveryCode(c, salt)));
    const factorId = newId();
    const endSet = async (id: string) => {
      const now = deps.clock();
      await deps.sessions.endFactor(id, now, revocationTtlMs);
      await deps.publishRevocations([factorEnded(id, now, revocationTtlMs)]);
    };
    // The current set is ended before it is replaced (a replacement that then fails leaves codes
    // that grant nothing new), and any set a racing call added is ended after.
    const current = await deps.recoveryCodes.activeSet(subject);
    if (current) await endSet(current.factorId);
    const replaced = await deps.recoveryCodes.replaceSet({
      ...{ subject, factorId, salt, hashes, now: new Date(deps.clock()) },
      onlyFirst: authorization.kind === "first_factor",
    });
    // A first factor raced in since the check: these codes would be a second one without a grant.
    assertThat(
      replaced,
      "GRANT_REQUIRED",
      `the subject has an active factor now: a grant for ${managementActions.createRecoveryCodes} is required`,
    );
    await Promise.all(replaced.filter((id) => id !== current?.factorId).map(endSet));
    await deps.refreshEnrolled(subject);
    await deps.audit.record({
      type: "recovery_codes.created",
      subject,
      caller,
      details: { factor_id: factorId, replaced, authorized_by: authorization.kind, ...provenBy(proof) },
    });
    return { factorId, codes };
  };
}
