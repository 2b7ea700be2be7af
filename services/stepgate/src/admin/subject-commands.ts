import type { AuditLog } from "../audit/audit-log.ts";
import type { Factor } from "../domain/factor.ts";
import { type Operator, operatorCaller, operatorDetails } from "../domain/operator.ts";
import type { ListFactors } from "../factors/list-factors.ts";
import type { FactorRemovalInput } from "../factors/remove-factor.ts";
import type { EndSession } from "../stepup/end-session.ts";

/** Who runs a command on which subject. */
interface SubjectCommand {
  subject: string;
  operator: Operator;
}

/** The subject's factors, as ListFactors lists them; recorded as `admin.factors_listed`. */
export type ListSubjectFactors = (input: SubjectCommand) => Promise<Factor[]>;

/**
 * Removes the factor without a management grant, with everything RemoveFactor ends (elevations,
 * grants, the revocation feed). Fails with FACTOR_NOT_FOUND when the subject has no such factor.
 */
export type RemoveSubjectFactor = (input: SubjectCommand & { factorId: string }) => Promise<void>;

/** Ends one session as EndSession does, the `session.ended` event naming the operator. */
export type EndSubjectSession = (input: SubjectCommand & { sessionId: string }) => Promise<void>;

export interface SubjectCommandsDeps {
  listFactors: ListFactors;
  /** The removal RemoveFactor runs (factors/remove-factor.ts `createFactorRemoval`). */
  removeFactor: (input: FactorRemovalInput) => Promise<void>;
  endSession: EndSession;
  audit: Pick<AuditLog, "record">;
}

/** The operator's commands on one subject, over the use cases ordinary callers go through. */
export function createSubjectCommands(deps: SubjectCommandsDeps) {
  const listSubjectFactors: ListSubjectFactors = async ({ subject, operator }) => {
    const factors = await deps.listFactors(subject);
    await deps.audit.record({
      type: "admin.factors_listed",
      subject,
      caller: operatorCaller(operator.name),
      details: operatorDetails(operator, "factors.read"),
    });
    return factors;
  };
  const removeSubjectFactor: RemoveSubjectFactor = ({ subject, factorId, operator }) =>
    deps.removeFactor({
      ...{ subject, factorId, caller: operatorCaller(operator.name) },
      // The operator's scope is the authorisation: no grant is asked of them.
      authorize: async () => {},
      details: operatorDetails(operator, "factors.manage"),
    });
  const endSubjectSession: EndSubjectSession = ({ subject, sessionId, operator }) =>
    deps.endSession({
      ...{ subject, sessionId, caller: operatorCaller(operator.name) },
      details: operatorDetails(operator, "sessions.end"),
    });
  return { listSubjectFactors, removeSubjectFactor, endSubjectSession };
}
