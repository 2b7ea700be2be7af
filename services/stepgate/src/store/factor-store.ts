import type { ChangeAuthorization, Enrolled, Factor } from "../domain/factor.ts";
import type { MethodName } from "../domain/method.ts";
import type { PasskeyRecord } from "../domain/passkey.ts";
import { groupCommit } from "./group-commit.ts";
import { oneByOneOnDeadlock, type Pg, type Sql } from "./sql.ts";

/** Durable factor records; every state change that must be atomic is one conditional statement. */
export interface FactorStore {
  list(subject: string): Promise<Factor[]>;
  find(subject: string, factorId: string): Promise<Factor | undefined>;
  /** The methods the subject can answer with, their TOTP factors' sealed secrets and the subject's version. */
  enrolled(subject: string): Promise<Enrolled>;
  hasActiveFactor(subject: string): Promise<boolean>;
  /** The subject's active TOTP factors. */
  activeTotp(subject: string): Promise<Factor[]>;
  /** Deletes the subject's oldest pending enrolments until at most `keep` remain; returns their ids. */
  dropOldestPending(subject: string, keep: number): Promise<string[]>;
  insertTotp(factor: NewTotp): Promise<void>;
  /**
   * Activates the subject's pending factor and records the step that proved it (raising the
   * subject's version), in one transaction that holds the subject's version row: with `onlyFirst`,
   * only while the subject has no other active factor, so two first factors racing cannot both
   * become active. "not_pending" if it is no longer pending or its window passed,
   * "subject_has_factor" if `onlyFirst` found another active factor.
   */
  activate(activation: Activation): Promise<"activated" | "not_pending" | "subject_has_factor">;
  /** The step that confirmed the factor, while it is still the factor's last claimed step. */
  confirmedStep(factorId: string): Promise<number | undefined>;
  /**
   * Claims a TOTP time step for `claim` (a challenge and idempotency key): "claimed" for the first claim of a step newer than the last (RFC 6238 5.2) and for a retry of
   * that same claim, "replayed" otherwise, "removed" when the factor is no longer active.
   */
  claimStep(factorId: string, step: number, claim: string, now: Date): Promise<StepClaim>;
  /** Deletes the factor (raising the subject's version); false if the subject has no such factor. */
  remove(subject: string, factorId: string): Promise<boolean>;
  /** Deletes the subject's pending enrolments whose confirmation window has passed. */
  deleteExpiredPending(subject: string, now: Date): Promise<void>;
}

/** A pending factor becoming active. */
export interface Activation {
  subject: string;
  factorId: string;
  /** The TOTP time step of the confirming code. */
  step: number;
  now: Date;
  /** Activate only while the subject has no other active factor (a first factor's authorisation). */
  onlyFirst: boolean;
}

/** The claim a confirmation leaves on its step: a retried confirmation recognises its own. */
export const confirmationClaim = (factorId: string) => `confirm:${factorId}`;

/** What claiming a TOTP time step found. */
export type StepClaim = "claimed" | "replayed" | "removed";

/** A new, pending TOTP factor; `secret` is already sealed. */
export interface NewTotp {
  id: string;
  subject: string;
  label: string;
  secret: Buffer;
  /** The key ring's key id that sealed the secret. */
  keyId: string;
  createdAt: Date;
  confirmBy: Date;
  /** What authorised the enrolment, checked again when it is confirmed. */
  authorizedBy: ChangeAuthorization;
}

// The factor row's columns under the domain's property names.
const factorColumns = `id, subject, method, status, label, secret, recovery_salt as "recoverySalt",
  created_at as "createdAt", confirm_by as "confirmBy", last_used_at as "lastUsedAt",
  authorized_by as "authorizedBy",
  exists (select 1 from passkey_credentials p where p.factor_id = factors.id and p.cloned_at is not null) as flagged`;

type FactorRow = Omit<Factor, "recoveryCodesRemaining" | "authorizedBy"> & { authorizedBy?: unknown };

/** Raises the version of the subjects of `changed` (a CTE with a `subject` column). */
export const bumpVersionSql = (changed: string) =>
  `insert into subject_versions (subject, version, updated_at) select subject, 1, now() from ${changed}
   on conflict (subject) do update set version = subject_versions.version + 1, updated_at = now()
   returning version`;

// The ORM's pg setup returns timestamps as text: make them Dates again.
const date = (v: Date | string | null) => (v === null ? null : new Date(v));
const withDates = (f: FactorRow): Omit<Factor, "recoveryCodesRemaining"> =>
  Object.assign(f, {
    createdAt: new Date(f.createdAt),
    confirmBy: date(f.confirmBy),
    lastUsedAt: date(f.lastUsedAt),
    authorizedBy:
      typeof f.authorizedBy === "string" ? (JSON.parse(f.authorizedBy) as ChangeAuthorization) : undefined,
  });

/**
 * Raises the subject's version inside a transaction, which holds its version row until commit:
 * changes to one subject's factors that must see each other's outcome run one after the other.
 */
export const lockSubject = (tx: Sql, subject: string) =>
  tx(`with changed as (select $1::text as subject) ${bumpVersionSql("changed")}`, [subject]);

/** Adds each recovery code set's count of unused codes. */
async function withRemaining(run: Sql, factors: FactorRow[]): Promise<Factor[]> {
  const sets = factors.filter((f) => f.method === "recovery_code").map((f) => f.id);
  const counts = new Map<string, number>();
  if (sets.length > 0) {
    const rows = await run<{ factor_id: string; n: string }>(
      "select factor_id, count(*) as n from recovery_codes where factor_id = any($1) and used_at is null group by factor_id",
      [sets],
    );
    for (const r of rows) counts.set(r.factor_id, Number(r.n));
  }
  return factors.map((f) => ({ ...withDates(f), recoveryCodesRemaining: counts.get(f.id) ?? 0 }));
}

/** One TOTP step claim (see FactorStore.claimStep). */
interface StepClaimInput {
  factorId: string;
  step: number;
  claim: string;
  now: Date;
}

/** Most step claims grouped in one statement: 64 rows keep the statement and its locks short. */
const claimBatchSize = 64;

/**
 * Claims steps of distinct factors in one statement and one commit. The row lock makes concurrent
 * claims of one step serial: exactly one sees last_step < step. A claim the update did not take is
 * looked at again in a statement of its own, which sees what committed meanwhile (a retry of the
 * same claim racing its first attempt finds the claim its own).
 */
async function claimSteps(run: Sql, claims: StepClaimInput[]): Promise<StepClaim[]> {
  // Rows locked in id order: two replicas' batches cannot deadlock on each other's rows.
  const sorted = [...claims].sort((a, b) => (a.factorId < b.factorId ? -1 : 1));
  const taken = await run<{ id: string }>(
    `update factors f set last_step = c.step, last_claim = c.claim, last_used_at = c.at
     from unnest($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[]) as c(id, step, claim, at)
     where f.id = c.id and f.status = 'active' and (f.last_step is null or f.last_step < c.step)
     returning f.id`,
    [
      sorted.map((c) => c.factorId),
      sorted.map((c) => c.step),
      sorted.map((c) => c.claim),
      sorted.map((c) => c.now),
    ],
  );
  const claimed = new Set(taken.map((r) => r.id));
  return Promise.all(
    claims.map((c) => (claimed.has(c.factorId) ? ("claimed" as const) : ownClaimOrNot(run, c))),
  );
}

/** A claim the update did not take: "removed", a retry's own claim ("claimed"), or "replayed". */
async function ownClaimOrNot(run: Sql, { factorId, step, claim }: StepClaimInput): Promise<StepClaim> {
  const found = await run<{ mine: boolean }>(
    "select (last_step = $1 and last_claim = $2) is true as mine from factors where id = $3 and status = 'active'",
    [step, claim, factorId],
  );
  if (found[0] === undefined) return "removed";
  // The same call retried (its first reply was lost): the claim is already ours.
  return found[0].mine ? "claimed" : "replayed";
}

/** One row of `enrolled`: a factor, and its credential when it is a passkey. */
interface EnrolledRow {
  id: string;
  method: MethodName;
  secret: Buffer | null;
  version: string | null;
  credential_id: string | null;
  public_key: Buffer | null;
  sign_count: string | null;
  backup_eligible: boolean | null;
  aaguid: string | null;
  rp_id: string | null;
  transports: string[] | null;
}

const passkeyOf = (r: EnrolledRow): PasskeyRecord[] =>
  r.method === "passkey" && r.credential_id && r.public_key && r.rp_id
    ? [
        {
          factorId: r.id,
          credentialId: r.credential_id,
          publicKey: r.public_key.toString("base64url"),
          counter: Number(r.sign_count ?? 0),
          backupEligible: r.backup_eligible === true,
          aaguid: r.aaguid ?? "",
          rpId: r.rp_id,
          transports: r.transports ?? [],
        },
      ]
    : [];

/** Whether the subject has an active factor other than `except`. */
export const hasOtherActive = async (run: Sql, subject: string, except: string) =>
  (
    await run("select 1 from factors where subject = $1 and status = 'active' and id <> $2 limit 1", [
      subject,
      except,
    ])
  ).length > 0;

export function createFactorStore(pg: Pg): FactorStore {
  const run = pg.sql;
  const claimGrouped = groupCommit<StepClaimInput, StepClaim>({
    maxBatch: claimBatchSize,
    keyOf: (c) => c.factorId,
    run: oneByOneOnDeadlock((batch) => claimSteps(run, batch)),
  });
  // Conditions are fixed fragments from this file; only values are parameters.
  const listWhere = async (condition: string, params: unknown[]) =>
    withRemaining(
      run,
      await run<FactorRow>(
        `select ${factorColumns} from factors where ${condition} order by created_at, id`,
        params,
      ),
    );
  return {
    list: (subject) => listWhere("subject = $1", [subject]),
    async find(subject, factorId) {
      return (await listWhere("subject = $1 and id = $2", [subject, factorId]))[0];
    },
    async enrolled(subject) {
      const rows = await run<EnrolledRow>(
        `select f.id, f.method, f.secret, (select version from subject_versions where subject = $1) as version,
           p.credential_id, p.public_key, p.sign_count, p.backup_eligible, p.aaguid, p.rp_id, p.transports
         from factors f left join passkey_credentials p on p.factor_id = f.id
         where f.subject = $2 and f.status = 'active'
         and (f.method <> 'recovery_code' or exists
           (select 1 from recovery_codes c where c.factor_id = f.id and c.used_at is null))
         and (f.method <> 'passkey' or (p.factor_id is not null and p.cloned_at is null))
         order by f.created_at, f.id`,
        [subject, subject],
      );
      const version =
        rows.length > 0
          ? Number(rows[0]?.version ?? 0)
          : Number(
              (
                await run<{ version: string }>("select version from subject_versions where subject = $1", [
                  subject,
                ])
              )[0]?.version ?? 0,
            );
      return {
        version,
        methods: new Set(rows.map((r) => r.method)),
        totp: rows.flatMap((r) =>
          r.method === "totp" && r.secret ? [{ id: r.id, sealed: r.secret.toString("base64") }] : [],
        ),
        passkeys: rows.flatMap(passkeyOf),
      };
    },
    async hasActiveFactor(subject) {
      const rows = await run("select 1 from factors where subject = $1 and status = 'active' limit 1", [
        subject,
      ]);
      return rows.length > 0;
    },
    activeTotp: (subject) => listWhere("subject = $1 and method = 'totp' and status = 'active'", [subject]),
    async dropOldestPending(subject, keep) {
      const rows = await run<{ id: string }>(
        `delete from factors where id in (
           select id from factors where subject = $1 and status = 'pending'
           order by created_at desc, id desc offset $2)
         returning id`,
        [subject, keep],
      );
      return rows.map((r) => r.id);
    },
    async insertTotp(f) {
      await run(
        `insert into factors (id, subject, method, status, label, secret, key_id, created_at, confirm_by, authorized_by)
         values ($1, $2, 'totp', 'pending', $3, $4, $5, $6, $7, $8)`,
        [
          f.id,
          f.subject,
          f.label,
          f.secret,
          f.keyId,
          f.createdAt,
          f.confirmBy,
          JSON.stringify(f.authorizedBy),
        ],
      );
    },
    activate: ({ subject, factorId, step, now, onlyFirst }) =>
      pg.transaction(async (tx) => {
        await lockSubject(tx, subject);
        if (onlyFirst && (await hasOtherActive(tx, subject, factorId))) return "subject_has_factor";
        const rows = await tx(
          `update factors set status = 'active', confirmed_at = $1, last_step = $2, last_claim = $3,
             confirm_by = null, authorized_by = null
           where id = $4 and subject = $5 and status = 'pending' and confirm_by > $6 returning id`,
          [now, step, confirmationClaim(factorId), factorId, subject, now],
        );
        // A refused activation leaves only a raised version: cached factors are read again, no more.
        return rows.length === 1 ? "activated" : "not_pending";
      }),
    async confirmedStep(factorId) {
      const rows = await run<{ last_step: string | null }>(
        "select last_step from factors where id = $1 and status = 'active' and last_claim = $2",
        [factorId, confirmationClaim(factorId)],
      );
      const step = rows[0]?.last_step;
      return step === undefined || step === null ? undefined : Number(step);
    },
    claimStep: (factorId, step, claim, now) => claimGrouped({ factorId, step, claim, now }),
    async remove(subject, factorId) {
      const rows = await run(
        `with changed as (delete from factors where subject = $1 and id = $2 returning subject)
         ${bumpVersionSql("changed")}`,
        [subject, factorId],
      );
      return rows.length === 1;
    },
    async deleteExpiredPending(subject, now) {
      await run("delete from factors where subject = $1 and status = 'pending' and confirm_by <= $2", [
        subject,
        now,
      ]);
    },
  };
}
