import type { AuditLog } from "../audit/audit-log.ts";
import { type Operator, operatorCaller, operatorDetails } from "../domain/operator.ts";
import type { AttemptCounters } from "../store/attempt-counters.ts";

/**
 * Ends a subject's run of consecutive failures, lockout included, in the hot store and in
 * PostgreSQL's durable copy, so no resync brings it back; the next Verify counts from zero.
 * Resolves whether there was a run to clear. Recorded as `subject.unlocked` with the operator.
 * Never fails for an unknown subject.
 */
export type UnlockSubject = (input: {
  subject: string;
  operator: Operator;
}) => Promise<{ hadFailures: boolean }>;

export interface UnlockSubjectDeps {
  counters: Pick<AttemptCounters, "failuresLapseInMs" | "unlock">;
  audit: Pick<AuditLog, "record">;
}

export function createUnlockSubject({ counters, audit }: UnlockSubjectDeps): UnlockSubject {
  return async ({ subject, operator }) => {
    const hadFailures = (await counters.failuresLapseInMs(subject)) > 0;
    await counters.unlock(subject);
    await audit.record({
      type: "subject.unlocked",
      subject,
      caller: operatorCaller(operator.name),
      details: { ...operatorDetails(operator, "subjects.unlock"), had_failures: hadFailures },
    });
    return { hadFailures };
  };
}
