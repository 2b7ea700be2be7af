import type { RevocationEvent } from "../domain/revocation.ts";
import { bumpVersionSql } from "./factor-store.ts";
import { appendRevocations } from "./revocation-log.ts";
import type { Pg, Sql } from "./sql.ts";

/** A security-relevant event; `details` must never hold a secret or a code. */
export interface AuditEvent {
  /** Random and unique (128 bits, base64url), given when the event is recorded: a redelivered event is stored once. */
  id: string;
  type: string;
  subject?: string;
  caller?: string;
  /** The replica that recorded it. */
  replica: string;
  details?: Record<string, unknown>;
  /** When it happened. */
  at: Date;
}

/** The append-only audit trail in PostgreSQL. */
export interface AuditStore {
  /**
   * Inserts `events` in one multi-row insert and one commit; an event whose id is stored already is
   * skipped, so a batch delivered twice is stored once. `totp.step_claimed` events also raise their
   * factor's last step, `passkey.counter_claimed` events their passkey's counter and
   * `passkey.counter_regressed` events flag theirs and `revocation.deferred` events join the
   * revocation feed, in the same transaction. Rejects with the driver's error.
   */
  append(events: AuditEvent[]): Promise<void>;
}

/**
 * The event type that carries a TOTP step claim PostgreSQL could not take when it was made:
 * storing the event also raises the factor's `last_step` (a write-behind queue riding the outbox).
 */
export const deferredTotpClaimType = "totp.step_claimed";

/**
 * The event type that carries a passkey signature counter PostgreSQL could not take when it was
 * accepted: storing the event also raises the credential's `sign_count` (never lowers it).
 */
export const deferredPasskeyCounterType = "passkey.counter_claimed";

interface DeferredCounter {
  factor_id: string;
  counter: number;
  claim: string;
}

const isDeferredCounter = (e: AuditEvent) => e.type === deferredPasskeyCounterType;

/** Raises each passkey's counter to the highest deferred one (never lowers it); idempotent. */
async function applyDeferredCounters(run: Sql, events: AuditEvent[]): Promise<void> {
  const counters = events.map((e) => ({ ...(e.details as unknown as DeferredCounter), at: e.at }));
  await run(
    `with c as (select distinct on (id) * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[])
                as u(id, counter, claim, at) order by id, counter desc),
     raised as (update passkey_credentials p set sign_count = c.counter, last_claim = c.claim
                from c where p.factor_id = c.id and p.sign_count < c.counter returning p.factor_id, c.at)
     update factors f set last_used_at = raised.at from raised where f.id = raised.factor_id`,
    [
      counters.map((c) => c.factor_id),
      counters.map((c) => c.counter),
      counters.map((c) => c.claim),
      counters.map((c) => c.at),
    ],
  );
}

/**
 * The event type of a cloned passkey (its counter did not grow): storing it also flags the
 * credential, so a clone caught while PostgreSQL was down is flagged once it is back.
 */
export const passkeyClonedType = "passkey.counter_regressed";

const isCloned = (e: AuditEvent) => e.type === passkeyClonedType;

/** Flags each cloned passkey's credential (keeping the first time it was flagged); idempotent. */
async function applyClones(run: Sql, events: AuditEvent[]): Promise<void> {
  await run(
    `with c as (select * from unnest($1::uuid[], $2::timestamptz[]) as u(id, at)),
     flagged as (update passkey_credentials p set cloned_at = c.at from c
                 where p.factor_id = c.id and p.cloned_at is null returning p.factor_id)
     ${bumpVersionSql("(select distinct f.subject from factors f join flagged on f.id = flagged.factor_id) as changed")}`,
    [events.map((e) => String((e.details as { factor_id?: unknown }).factor_id)), events.map((e) => e.at)],
  );
}

/**
 * The event type that carries a revocation PostgreSQL could not take when it was made: storing the
 * event also appends it to the revocation feed (details: a RevocationEvent), once per event id.
 */
export const deferredRevocationType = "revocation.deferred";

const isDeferredRevocation = (e: AuditEvent) => e.type === deferredRevocationType;

const deferredRevocations = (events: AuditEvent[]) =>
  events.map((e) => e.details as unknown as RevocationEvent);

interface DeferredClaim {
  factor_id: string;
  step: number;
  claim: string;
}

const isDeferredClaim = (e: AuditEvent) => e.type === deferredTotpClaimType;

/** Raises each factor's last step to the highest deferred one (never lowers it); idempotent. */
async function applyDeferredClaims(run: Sql, events: AuditEvent[]): Promise<void> {
  const claims = events.map((e) => ({ ...(e.details as unknown as DeferredClaim), at: e.at }));
  await run(
    `update factors f set last_step = c.step, last_claim = c.claim, last_used_at = c.at
     from (select distinct on (id) * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[])
           as u(id, step, claim, at) order by id, step desc) c
     where f.id = c.id and (f.last_step is null or f.last_step < c.step)`,
    [
      claims.map((c) => c.factor_id),
      claims.map((c) => c.step),
      claims.map((c) => c.claim),
      claims.map((c) => c.at),
    ],
  );
}

export function createAuditStore(pg: Pg): AuditStore {
  const insert = (run: Sql, events: AuditEvent[]) =>
    run(
      `insert into audit_events (event_id, at, type, subject, caller, replica, details)
         select * from unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[])
         on conflict (event_id) do nothing`,
      [
        events.map((e) => e.id),
        events.map((e) => e.at),
        events.map((e) => e.type),
        events.map((e) => e.subject ?? null),
        events.map((e) => e.caller ?? null),
        events.map((e) => e.replica),
        events.map((e) => JSON.stringify(e.details ?? {})),
      ],
    );
  return {
    async append(events) {
      if (events.length === 0) return;
      const deferred = events.filter(isDeferredClaim);
      const counters = events.filter(isDeferredCounter);
      const clones = events.filter(isCloned);
      const revocations = events.filter(isDeferredRevocation);
      if (deferred.length + counters.length + clones.length + revocations.length === 0) {
        await insert(pg.sql, events);
        return;
      }
      // The events and the claims they carry are stored together or not at all.
      await pg.transaction(async (tx) => {
        await insert(tx, events);
        if (deferred.length > 0) await applyDeferredClaims(tx, deferred);
        if (counters.length > 0) await applyDeferredCounters(tx, counters);
        if (clones.length > 0) await applyClones(tx, clones);
        await appendRevocations(tx, deferredRevocations(revocations));
      });
    },
  };
}
