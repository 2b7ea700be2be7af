import type { AuditLog } from "../audit/audit-log.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import { managementActions } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";

export interface RemoveFactorInput {
  subject: string;
  factorId: string;
  /** A grant for stepgate.remove_factor; required while the subject has an active factor. */
  grant: string;
  caller: string;
}

/** Removes one of the subject's factors. Fails with FACTOR_NOT_FOUND, GRANT_REQUIRED or a grant reason. */
export type RemoveFactor = (input: RemoveFactorInput) => Promise<void>;

export interface RemoveFactorDeps {
  factors: Pick<FactorStore, "find" | "remove">;
  authorizeChange: AuthorizeChange;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
}

export function createRemoveFactor(deps: RemoveFactorDeps): RemoveFactor {
  return async ({ subject, factorId, grant, caller }) => {
    assertThat(await deps.factors.find(subject, factorId), "FACTOR_NOT_FOUND", "no such factor");
    await deps.authorizeChange(subject, caller, managementActions.removeFactor, grant);
    assertThat(await deps.factors.remove(subject, factorId), "FACTOR_NOT_FOUND", "no such factor");
    await deps.refreshEnrolled(subject);
    await deps.audit.record({ type: "factor.removed", subject, caller, details: { factor_id: factorId } });
  };
}
