import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../domain/clock.ts";
import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";
import type { SessionStore } from "../store/session-store.ts";

/** How long an ended session id is remembered as ended, in ms (a day). */
export const endedSessionRetentionMs = 24 * 3600_000;

export interface EndSessionInput {
  subject: string;
  sessionId: string;
  caller: string;
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
}

export function createEndSession({ sessions, policy, audit, clock }: EndSessionDeps): EndSession {
  // A revocation must outlive every grant it revokes (a minute more absorbs clock skew), and the
  // end outlive the session's use by its caller.
  const revocationTtlMs = Math.max(endedSessionRetentionMs, longestGrantLifetimeMs(policy) + 60_000);
  return async ({ subject, sessionId, caller }) => {
    await sessions.end(subject, sessionId, clock(), revocationTtlMs, policy.levels);
    await audit.record({ type: "session.ended", subject, caller });
  };
}
