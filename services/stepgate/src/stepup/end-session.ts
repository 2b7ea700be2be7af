import type { AuditLog } from "../audit/audit-log.ts";
import type { Clock } from "../domain/clock.ts";
import { longestGrantLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";
import type { SessionStore } from "../store/session-store.ts";

export interface EndSessionInput {
  subject: string;
  sessionId: string;
  caller: string;
}

/**
 * Ends a session: its elevations are dropped and every grant issued to it until now is revoked
 * (CheckGrant answers GRANT_REVOKED). Idempotent; never fails for an unknown session.
 */
export type EndSession = (input: EndSessionInput) => Promise<void>;

export interface EndSessionDeps {
  sessions: Pick<SessionStore, "end">;
  policy: Policy;
  audit: Pick<AuditLog, "record">;
  clock: Clock;
}

export function createEndSession({ sessions, policy, audit, clock }: EndSessionDeps): EndSession {
  // A revocation must outlive every grant it revokes; a minute more absorbs clock skew.
  const revocationTtlMs = longestGrantLifetimeMs(policy) + 60_000;
  return async ({ subject, sessionId, caller }) => {
    await sessions.end(subject, sessionId, clock(), revocationTtlMs, policy.levels);
    await audit.record({ type: "session.ended", subject, caller });
  };
}
