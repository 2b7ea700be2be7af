import { setTimeout as sleep } from "node:timers/promises";
import { type DegradedLab, labRedisPrefix } from "./degraded-lab.ts";

/** The audit event types a grant leaves: Verify's and StepUp's (from an elevation). */
export const grantEventTypes = ["verify.succeeded", "grant.issued"] as const;

/** The Redis stream the replicas' audit events wait in (`hotKeys.auditOutbox()` under the prefix). */
export const auditOutboxKey = `${labRedisPrefix}audit-outbox`;

/** The load's grants against the grant events stored in `audit_events` once the outbox drained. */
export interface AuditFigures {
  /** Distinct grants the load received. */
  expected: number;
  /** Grant events stored for the load's subjects since the run started. */
  found: number;
  /** Received grants with no stored event: lost audit events. */
  missing: number;
  /** Stored events of grants the load never received (e.g. a reply lost with a killed replica). */
  extra: number;
  /** Events stored more than once: a grant id or an event id on two rows. */
  duplicates: number;
  /** How long after the wait began (the load over) the count last changed, in ms. */
  drainMs: number;
  /** False when the bound passed while the count still grew or the outbox still held entries. */
  settled: boolean;
  /** Entries left in the outbox stream at the end; undefined when Redis did not answer. */
  outboxLeft: number | undefined;
}

/** Options of `auditAfterRecovery`; times are in ms. */
export interface AuditDrainOptions {
  /** The count must stay the same this long (with an empty outbox). Default 2000. */
  stableMs?: number;
  /** The bound on the wait. Default 30_000. */
  timeoutMs?: number;
  /** Events of subjects whose name starts so count. Default `load-` (`seedSubjects`' default). */
  subjectPrefix?: string;
}

/**
 * Waits for the replicas' drainers to move the outbox into `audit_events` (there is no RPC to flush
 * it: polls the table every 250 ms until its count of grant events since `sinceEpochMs` has not
 * changed for `stableMs` and the outbox stream is empty, at most `timeoutMs`), then compares the
 * stored events with `grantIds`, the grants the load received. Rejects when PostgreSQL does not
 * answer.
 */
export async function auditAfterRecovery(
  lab: DegradedLab,
  grantIds: readonly string[],
  sinceEpochMs: number,
  options: AuditDrainOptions = {},
): Promise<AuditFigures> {
  const { stableMs = 2000, timeoutMs = 30_000, subjectPrefix = "load-" } = options;
  const where = "type = any($1) and at >= $2 and subject like $3";
  const params = [[...grantEventTypes], new Date(sinceEpochMs), `${subjectPrefix}%`];
  const outboxLength = () => lab.redisClient.xlen(auditOutboxKey).catch(() => undefined);
  const started = performance.now();
  let last = -1;
  let stableSince = performance.now();
  let settled = false;
  let outboxLeft: number | undefined;
  while (performance.now() - started < timeoutMs) {
    const [row] = await lab.query<{ n: string }>(
      `select count(*) as n from audit_events where ${where}`,
      params,
    );
    const count = Number(row?.n ?? 0);
    outboxLeft = await outboxLength();
    if (count !== last || (outboxLeft ?? 0) > 0) {
      last = count;
      stableSince = performance.now();
    } else if (performance.now() - stableSince >= stableMs) {
      settled = true;
      break;
    }
    await sleep(250);
  }
  const drainMs = Math.round(stableSince - started);
  const rows = await lab.query<{ grant_id: string | null; event_id: string | null }>(
    `select details->>'grant_id' as grant_id, event_id from audit_events where ${where}`,
    params,
  );
  const received = new Set(grantIds);
  const stored = new Set(rows.map((r) => r.grant_id));
  const eventIds = new Set(rows.map((r) => r.event_id));
  return {
    expected: received.size,
    found: rows.length,
    missing: [...received].filter((id) => !stored.has(id)).length,
    extra: rows.filter((r) => r.grant_id === null || !received.has(r.grant_id)).length,
    duplicates: rows.length - stored.size + (rows.length - eventIds.size),
    drainMs,
    settled,
    outboxLeft,
  };
}
