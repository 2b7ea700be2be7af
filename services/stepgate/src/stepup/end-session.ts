import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../domain/clock.ts";
import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";
import type { PublishRevocations } from "../revocations/publish-revocation.ts";
import { sessionEnded } from "../revocations/revocation-events.ts";
import type { SessionStore } from "../store/session-store.ts";

/** How long an ended session id is remembered as ended, in ms (a day). */
export const endedSessionRetentionMs = 24 * 3600_000;

export interface EndSessionInput {
  subject: string;
  sessionId: string;
  caller: string;
  /** More details for the `session.ended` event, e.g. the operator who ended it (never a secret). */
  details?: Record<string, unknown>;
}

/**
 * Ends a session for good: its elevations are dropped, every grant issued to it is revoked
 * (CheckGrant answers GRANT_REVOKED), its open challenges are refused, and StepUp answers
 * SESSION_ENDED for it from now on (for `endedSessionRetentionMs`, or the longest grant lifetime
 * plus a minute if longer; session ids are not meant to be reused). Idempotent; never fails for an
 * unknown session.
 */
export type EndSession = (input: EndSessionInput) => Promise<void>;

export interface EndSessionDeps {
  sessions: Pick<SessionStore, "end">;
  policy: Policy;
  audit: Pick<AuditLog, "record">;
  clock: Clock;
  /** Tells offline verifiers (the revocation feed). */
  publishRevocations: PublishRevocations;
}

export function createEndSession(deps: EndSessionDeps): EndSession {
  const { sessions, policy, audit, clock } = deps;
  // A revocation must outlive every grant it revokes (a minute more absorbs clock skew), and the
  // end outlive the session's use by its caller.
  const grantsLastMs = longestGrantLifetimeMs(policy) + 60_000;
  const revocationTtlMs = Math.max(endedSessionRetentionMs, grantsLastMs);
  return async ({ subject, sessionId, caller, details }) => {
    const now = clock();
    await sessions.end(subject, sessionId, now, revocationTtlMs, policy.levels);
    await deps.publishRevocations([sessionEnded(subject, sessionId, now, grantsLastMs)]);
    await audit.record({ type: "session.ended", subject, caller, ...(details ? { details } : {}) });
  };
}
