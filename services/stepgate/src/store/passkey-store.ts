import type { ChangeAuthorization } from "../domain/factor.ts";
import { hasOtherActive, lockSubject } from "./factor-store.ts";
import { groupCommit } from "./group-commit.ts";
import { oneByOneOnDeadlock, type Pg, pgErrorCode, type Sql } from "./sql.ts";

/** A new, pending passkey enrolment: a factor row without a credential yet. */
export interface NewPasskey {
  id: string;
  subject: string;
  label: string;
  createdAt: Date;
  confirmBy: Date;
  /** What authorised the enrolment, checked again when it is finished. */
  authorizedBy: ChangeAuthorization;
}

/** A verified credential that activates a pending passkey. */
export interface PasskeyActivation {
  subject: string;
  factorId: string;
  rpId: string;
  /** base64url. */
  credentialId: string;
  /** COSE_Key bytes. */
  publicKey: Uint8Array;
  counter: number;
  backupEligible: boolean;
  aaguid: string;
  transports: string[];
  attestationFormat: string;
  now: Date;
  /** Activate only while the subject has no other active factor (a first factor's authorisation). */
  onlyFirst: boolean;
}

/** What claiming a passkey's signature counter found (see PasskeyStore.claimCounter). */
export type CounterClaim = "claimed" | "regressed" | "removed";

/** Durable passkey credentials (table passkey_credentials, one per passkey factor). */
export interface PasskeyStore {
  insertPending(passkey: NewPasskey): Promise<void>;
  /**
   * Stores the credential and activates its pending factor in one transaction holding the subject's
   * version row (raising it), as FactorStore.activate does for TOTP. "already_registered" when the
   * relying party has this credential id already (for any subject); nothing is written then.
   */
  activate(
    activation: PasskeyActivation,
  ): Promise<"activated" | "not_pending" | "subject_has_factor" | "already_registered">;
  /** The credential id of the subject's passkey factor, once its enrolment finished; undefined otherwise. */
  credentialOf(subject: string, factorId: string): Promise<string | undefined>;
  /** The credential ids the subject registered with the relying party (WebAuthn excludeCredentials). */
  credentialIds(subject: string, rpId: string): Promise<{ id: string; transports: string[] }[]>;
  /**
   * Records `counter` for `claim` (a challenge and idempotency key) and the factor's last use:
   * "claimed" for a counter above the stored one, both 0 (an authenticator that keeps none), or a
   * retry of the same claim; "regressed" when it did not grow or the credential is flagged;
   * "removed" when the factor is no longer active.
   */
  claimCounter(factorId: string, counter: number, claim: string, now: Date): Promise<CounterClaim>;
  /** Flags the credential as cloned (its counter went backwards) and raises the subject's version. */
  flagCloned(subject: string, factorId: string, now: Date): Promise<void>;
}

/** One counter claim (see PasskeyStore.claimCounter). */
interface CounterClaimInput {
  factorId: string;
  counter: number;
  claim: string;
  now: Date;
}

/** Most counter claims in one statement: 64 rows keep the statement and its locks short. */
const claimBatchSize = 64;

/**
 * Claims the counters of distinct passkeys in one statement and one commit, rows locked in factor id
 * order (two replicas' batches cannot deadlock). A claim the update did not take is looked at again
 * on its own: "regressed" if the passkey is still active, "removed" if not.
 */
async function claimCounters(run: Sql, claims: CounterClaimInput[]): Promise<CounterClaim[]> {
  const sorted = [...claims].sort((a, b) => (a.factorId < b.factorId ? -1 : 1));
  const taken = await run<{ id: string }>(
    `with c as (select * from unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[]) as u(id, counter, claim, at)),
     claimed as (
       update passkey_credentials p set sign_count = c.counter, last_claim = c.claim
       from c, factors f
       where p.factor_id = c.id and f.id = p.factor_id and f.status = 'active' and p.cloned_at is null
         and (p.sign_count < c.counter or (c.counter = 0 and p.sign_count = 0)
              or (p.sign_count = c.counter and p.last_claim = c.claim))
       returning p.factor_id, c.at)
     update factors f set last_used_at = claimed.at from claimed where f.id = claimed.factor_id returning f.id`,
    [
      sorted.map((c) => c.factorId),
      sorted.map((c) => c.counter),
      sorted.map((c) => c.claim),
      sorted.map((c) => c.now),
    ],
  );
  const claimed = new Set(taken.map((r) => r.id));
  return Promise.all(
    claims.map((c) => (claimed.has(c.factorId) ? ("claimed" as const) : refusedClaim(run, c))),
  );
}

/** Why a counter claim was not taken: the passkey is still active (its counter did not grow), or it is gone. */
async function refusedClaim(run: Sql, { factorId }: CounterClaimInput): Promise<CounterClaim> {
  const found = await run(
    `select 1 from passkey_credentials p join factors f on f.id = p.factor_id
     where p.factor_id = $1 and f.status = 'active'`,
    [factorId],
  );
  return found.length === 1 ? "regressed" : "removed";
}

const isUniqueViolation = (error: unknown) => pgErrorCode(error) === "23505";

export function createPasskeyStore(pg: Pg): PasskeyStore {
  const run = pg.sql;
  // As TOTP step claims: concurrent Verify calls share one statement and one commit.
  const claimGrouped = groupCommit<CounterClaimInput, CounterClaim>({
    maxBatch: claimBatchSize,
    keyOf: (c) => c.factorId,
    run: oneByOneOnDeadlock((batch) => claimCounters(run, batch)),
  });
  return {
    async insertPending(p) {
      await run(
        `insert into factors (id, subject, method, status, label, created_at, confirm_by, authorized_by)
         values ($1, $2, 'passkey', 'pending', $3, $4, $5, $6)`,
        [p.id, p.subject, p.label, p.createdAt, p.confirmBy, JSON.stringify(p.authorizedBy)],
      );
    },
    activate: (a) =>
      pg
        .transaction(async (tx) => {
          await lockSubject(tx, a.subject);
          if (a.onlyFirst && (await hasOtherActive(tx, a.subject, a.factorId)))
            return "subject_has_factor" as const;
          const rows = await tx(
            `update factors set status = 'active', confirmed_at = $1, confirm_by = null, authorized_by = null
             where id = $2 and subject = $3 and method = 'passkey' and status = 'pending' and confirm_by > $1
             returning id`,
            [a.now, a.factorId, a.subject],
          );
          if (rows.length !== 1) return "not_pending" as const;
          await tx(
            `insert into passkey_credentials (factor_id, rp_id, credential_id, public_key, sign_count,
               backup_eligible, aaguid, transports, attestation_format)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
            [
              a.factorId,
              a.rpId,
              a.credentialId,
              Buffer.from(a.publicKey),
              a.counter,
              a.backupEligible,
              a.aaguid,
              a.transports,
              a.attestationFormat,
            ],
          );
          return "activated" as const;
        })
        // The transaction rolled back as a whole: the factor is still pending.
        .catch((error: unknown) => {
          if (isUniqueViolation(error)) return "already_registered" as const;
          throw error;
        }),
    async credentialOf(subject, factorId) {
      const rows = await run<{ credential_id: string }>(
        `select p.credential_id from passkey_credentials p join factors f on f.id = p.factor_id
         where f.subject = $1 and p.factor_id = $2`,
        [subject, factorId],
      );
      return rows[0]?.credential_id;
    },
    async credentialIds(subject, rpId) {
      const rows = await run<{ credential_id: string; transports: string[] }>(
        `select p.credential_id, p.transports from passkey_credentials p join factors f on f.id = p.factor_id
         where f.subject = $1 and p.rp_id = $2 order by f.created_at, f.id`,
        [subject, rpId],
      );
      return rows.map((r) => ({ id: r.credential_id, transports: r.transports }));
    },
    claimCounter: (factorId, counter, claim, now) => claimGrouped({ factorId, counter, claim, now }),
    flagCloned: (subject, factorId, now) =>
      pg.transaction(async (tx) => {
        // The subject's cached factors are read again: a flagged credential leaves them.
        await lockSubject(tx, subject);
        await tx("update passkey_credentials set cloned_at = coalesce(cloned_at, $2) where factor_id = $1", [
          factorId,
          now,
        ]);
      }),
  };
}
