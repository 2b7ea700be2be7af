import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../domain/clock.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import { provenBy } from "../identity/prove-subject.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { factorRevocationLifetimeMs } from "../policy/assurance.ts";
import { managementActions, type Policy } from "../policy/policy.ts";
import type { PublishRevocations } from "../revocations/publish-revocation.ts";
import { factorEnded } from "../revocations/revocation-events.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";

export interface RemoveFactorInput {
  subject: string;
  factorId: string;
  /** A grant for stepgate.remove_factor; required while the subject has an active factor. */
  grant: string;
  caller: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs it. */
  proof?: SubjectToken | undefined;
  /** The call's idempotency key ("" for none): a retry may spend the same grant again. */
  idempotencyKey?: string;
}

/**
 * Removes one of the subject's factors and ends what it granted: the elevations it produced stop
 * counting and grants issued from them are revoked (CheckGrant: GRANT_REVOKED); an open challenge
 * answered with it gets FACTOR_REMOVED. Removing a factor that was removed already succeeds once
 * the change is authorised (a retry with the same idempotency key spends the same grant again),
 * so a removal whose reply was lost can be sent again. Fails with FACTOR_NOT_FOUND,
 * GRANT_REQUIRED or a reason of AuthorizeChange.
 */
export type RemoveFactor = (input: RemoveFactorInput) => Promise<void>;

export interface RemoveFactorDeps {
  factors: Pick<FactorStore, "find" | "remove">;
  /** Where the factor's end is recorded, which ends its elevations and grants. */
  sessions: Pick<SessionStore, "endFactor" | "factorEnded">;
  authorizeChange: AuthorizeChange;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  policy: Policy;
  clock: Clock;
  /** Tells offline verifiers (the revocation feed). */
  publishRevocations: PublishRevocations;
}

export function createRemoveFactor(deps: RemoveFactorDeps): RemoveFactor {
  const removal = createFactorRemoval(deps);
  return ({ subject, factorId, grant, caller, proof, idempotencyKey = "" }) =>
    removal({
      ...{ subject, factorId, caller },
      authorize: () =>
        deps.authorizeChange({
          ...{ subject, caller, grant, proof, idempotencyKey },
          action: managementActions.removeFactor,
        }),
      details: provenBy(proof),
    });
}

/** One removal as `createFactorRemoval` runs it: who asks, what lets it through, what the audit adds. */
export interface FactorRemovalInput {
  subject: string;
  factorId: string;
  /** The caller the audit event names. */
  caller: string;
  /** Fails when the change is not allowed; runs once the factor is found (or found removed already). */
  authorize: () => Promise<unknown>;
  /** More details for the `factor.removed` event (never a secret). */
  details: Record<string, unknown>;
}

/**
 * The removal RemoveFactor and an operator's AdminService.RemoveSubjectFactor share: ends the
 * factor's elevations and grants (revocation feed included), then removes it, as RemoveFactor
 * says. Fails with FACTOR_NOT_FOUND, or with what `authorize` throws.
 */
export function createFactorRemoval(
  deps: Omit<RemoveFactorDeps, "authorizeChange">,
): (input: FactorRemovalInput) => Promise<void> {
  const revocationTtlMs = factorRevocationLifetimeMs(deps.policy);
  return async ({ subject, factorId, caller, authorize, details }) => {
    if (!(await deps.factors.find(subject, factorId))) {
      // Removed already (ids are never reused): done, for a caller allowed to remove it.
      assertThat(await deps.sessions.factorEnded(factorId), "FACTOR_NOT_FOUND", "no such factor");
      await authorize();
      return;
    }
    await authorize();
    // Ended first: a removal that then fails leaves a factor that grants nothing, never the reverse.
    const now = deps.clock();
    await deps.sessions.endFactor(factorId, now, revocationTtlMs);
    await deps.publishRevocations([factorEnded(factorId, now, revocationTtlMs)]);
    assertThat(await deps.factors.remove(subject, factorId), "FACTOR_NOT_FOUND", "no such factor");
    await deps.refreshEnrolled(subject);
    await deps.audit.record({
      type: "factor.removed",
      subject,
      caller,
      details: { factor_id: factorId, ...details },
    });
  };
}
