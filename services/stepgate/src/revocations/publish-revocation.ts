import type { AuditLog } from "../audit/audit-log.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { RevocationEvent } from "../domain/revocation.ts";
import type { RevocationLog } from "../store/revocation-log.ts";

/**
 * Makes revocations reach the feed: resolves once they are in PostgreSQL, or, while it is down, in
 * the audit outbox, whose drainer appends them once it is back (`revocation.deferred`). Rejects
 * when neither takes them. Called after the hot state recorded the revocation, so an online check
 * refuses the grant before any verifier hears of it.
 */
export type PublishRevocations = (events: RevocationEvent[]) => Promise<void>;

export interface PublishRevocationsDeps {
  log: Pick<RevocationLog, "append">;
  audit: Pick<AuditLog, "deferRevocation">;
}

export function createPublishRevocations({ log, audit }: PublishRevocationsDeps): PublishRevocations {
  return async (events) => {
    try {
      await log.append(events);
    } catch (error) {
      if (!(error instanceof DependencyUnavailableError)) throw error;
      const deferred = await Promise.all(events.map((event) => audit.deferRevocation(event)));
      if (deferred.includes(false)) throw error;
    }
  };
}
