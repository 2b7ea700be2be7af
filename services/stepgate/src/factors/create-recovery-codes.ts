import type { AuditLog } from "../audit/audit-log.ts";
import { newId } from "../crypto/random-id.ts";
import type { Clock } from "../domain/clock.ts";
import { managementActions } from "../policy/policy.ts";
import type { RecoveryCodeStore } from "../store/recovery-code-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";
import { hashRecoveryCode, newRecoveryCodes, newRecoverySalt } from "./recovery-codes.ts";

export interface CreateRecoveryCodesInput {
  subject: string;
  /** A grant for stepgate.create_recovery_codes; required once the subject has an active factor. */
  grant: string;
  caller: string;
}

/**
 * Replaces the subject's recovery codes with ten new ones, shown once and stored only as salted
 * scrypt hashes (NIST SP 800-63B 5.1.2). Fails with GRANT_REQUIRED or a grant reason.
 */
export type CreateRecoveryCodes = (
  input: CreateRecoveryCodesInput,
) => Promise<{ factorId: string; codes: string[] }>;

export interface CreateRecoveryCodesDeps {
  recoveryCodes: Pick<RecoveryCodeStore, "replaceSet">;
  authorizeChange: AuthorizeChange;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  clock: Clock;
}

export function createCreateRecoveryCodes(deps: CreateRecoveryCodesDeps): CreateRecoveryCodes {
  return async ({ subject, grant, caller }) => {
    await deps.authorizeChange(subject, caller, managementActions.createRecoveryCodes, grant);
    const codes = newRecoveryCodes();
    const salt = newRecoverySalt();
    const hashes = await Promise.all(codes.map((c) => hashRecoveryCode(c, salt)));
    const factorId = newId();
    await deps.recoveryCodes.replaceSet(subject, factorId, salt, hashes, new Date(deps.clock()));
    await deps.refreshEnrolled(subject);
    await deps.audit.record({
      type: "recovery_codes.created",
      subject,
      caller,
      details: { factor_id: factorId },
    });
    return { factorId, codes };
  };
}
