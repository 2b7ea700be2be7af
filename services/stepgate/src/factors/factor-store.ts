import type { MethodName } from "../config/policy.ts";
import type { Database } from "../store/database.ts";
import type { Factor } from "../store/entities.ts";
import { inTransaction, sqlFor } from "../store/sql.ts";

/** Durable factor records; every state change that must be atomic is one conditional statement. */
export interface FactorStore {
  list(subject: string): Promise<FactorRow[]>;
  find(subject: string, factorId: string): Promise<FactorRow | undefined>;
  /** The methods the subject can answer with, and their TOTP factors' sealed secrets, in one query. */
  enrolled(subject: string): Promise<Enrolled>;
  hasActiveFactor(subject: string): Promise<boolean>;
  activeTotp(subject: string): Promise<FactorRow[]>;
  recoverySet(subject: string): Promise<FactorRow | undefined>;
  countPending(subject: string): Promise<number>;
  insertTotp(row: NewTotp): Promise<void>;
  /** Activates a pending factor and records the step that proved it; false if no longer pending. */
  activate(factorId: string, step: number, now: Date): Promise<boolean>;
  /** Claims a TOTP step: true only for the first claim of a step newer than the last. */
  claimStep(factorId: string, step: number, claim: string, now: Date): Promise<boolean>;
  replaceRecoverySet(
    subject: string,
    factorId: string,
    salt: Buffer,
    hashes: Buffer[],
    now: Date,
  ): Promise<void>;
  /** Marks one unused code used; returns the codes left, or undefined if no unused code matched. */
  useRecoveryCode(factorId: string, hash: Buffer, claim: string, now: Date): Promise<number | undefined>;
  /** Who used a recovery code, when it was used already. */
  recoveryCodeClaim(factorId: string, hash: Buffer): Promise<string | null | undefined>;
  remove(subject: string, factorId: string): Promise<boolean>;
  deleteExpiredPending(subject: string, now: Date): Promise<void>;
}

export type FactorRow = Factor & { recoveryCodesRemaining: number };

/** A TOTP factor's id and its secret, still sealed (base64): safe to keep in the hot store. */
export interface SealedTotp {
  id: string;
  sealed: string;
}

export interface Enrolled {
  methods: Set<MethodName>;
  totp: SealedTotp[];
}

export interface NewTotp {
  id: string;
  subject: string;
  label: string;
  secret: Buffer;
  keyId: string;
  createdAt: Date;
  confirmBy: Date;
}

// The factor row's columns under the entity's property names.
const factorColumns = `id, subject, method, status, label, secret, key_id as "keyId", last_step as "lastStep",
  last_claim as "lastClaim", recovery_salt as "recoverySalt", created_at as "createdAt", confirm_by as "confirmBy",
  confirmed_at as "confirmedAt", last_used_at as "lastUsedAt"`;

// The ORM's pg setup returns timestamps as text: make them Dates again.
const date = (v: Date | string | null | undefined) => (v === null || v === undefined ? null : new Date(v));
const withDates = (f: Factor): Factor =>
  Object.assign(f, {
    createdAt: new Date(f.createdAt),
    confirmBy: date(f.confirmBy),
    confirmedAt: date(f.confirmedAt),
    lastUsedAt: date(f.lastUsedAt),
  });

export function createFactorStore(db: Database): FactorStore {
  const run = sqlFor(db);
  const withRemaining = async (factors: Factor[]): Promise<FactorRow[]> => {
    const sets = factors.filter((f) => f.method === "recovery_code").map((f) => f.id);
    const counts = new Map<string, number>();
    if (sets.length > 0) {
      const rows = await run<{ factor_id: string; n: string }>(
        "select factor_id, count(*) as n from recovery_codes where factor_id = any(?) and used_at is null group by factor_id",
        [sets],
      );
      for (const r of rows) counts.set(r.factor_id, Number(r.n));
    }
    return factors.map((f) => Object.assign(withDates(f), { recoveryCodesRemaining: counts.get(f.id) ?? 0 }));
  };
  // Conditions are fixed fragments from this file; only values are parameters.
  const listWhere = async (condition: string, params: unknown[]) =>
    withRemaining(
      await run<Factor>(
        `select ${factorColumns} from factors where ${condition} order by created_at, id`,
        params,
      ),
    );

  return {
    list: (subject) => listWhere("subject = ?", [subject]),
    async find(subject, factorId) {
      return (await listWhere("subject = ? and id = ?", [subject, factorId]))[0];
    },
    async enrolled(subject) {
      const rows = await run<{ id: string; method: MethodName; secret: Buffer | null }>(
        `select f.id, f.method, f.secret from factors f where f.subject = ? and f.status = 'active'
         and (f.method <> 'recovery_code' or exists
           (select 1 from recovery_codes c where c.factor_id = f.id and c.used_at is null))
         order by f.created_at, f.id`,
        [subject],
      );
      return {
        methods: new Set(rows.map((r) => r.method)),
        totp: rows.flatMap((r) =>
          r.method === "totp" && r.secret ? [{ id: r.id, sealed: r.secret.toString("base64") }] : [],
        ),
      };
    },
    async hasActiveFactor(subject) {
      const rows = await run("select 1 from factors where subject = ? and status = 'active' limit 1", [
        subject,
      ]);
      return rows.length > 0;
    },
    activeTotp: (subject) => listWhere("subject = ? and method = 'totp' and status = 'active'", [subject]),
    async recoverySet(subject) {
      return (
        await listWhere("subject = ? and method = 'recovery_code' and status = 'active'", [subject])
      )[0];
    },
    async countPending(subject) {
      const rows = await run<{ n: string }>(
        "select count(*) as n from factors where subject = ? and status = 'pending'",
        [subject],
      );
      return Number(rows[0]?.n ?? 0);
    },
    async insertTotp(row) {
      await run(
        `insert into factors (id, subject, method, status, label, secret, key_id, created_at, confirm_by)
         values (?, ?, 'totp', 'pending', ?, ?, ?, ?, ?)`,
        [row.id, row.subject, row.label, row.secret, row.keyId, row.createdAt, row.confirmBy],
      );
    },
    async activate(factorId, step, now) {
      const rows = await run(
        `update factors set status = 'active', confirmed_at = ?, last_step = ?, confirm_by = null
         where id = ? and status = 'pending' and confirm_by > ? returning id`,
        [now, step, factorId, now],
      );
      return rows.length === 1;
    },
    async claimStep(factorId, step, claim, now) {
      // The row lock makes concurrent claims of one step serial: exactly one sees last_step < step.
      const rows = await run(
        `update factors set last_step = ?, last_claim = ?, last_used_at = ?
         where id = ? and status = 'active' and (last_step is null or last_step < ?) returning id`,
        [step, claim, now, factorId, step],
      );
      if (rows.length === 1) return true;
      // The same call retried (its first reply was lost): the claim is already ours.
      const mine = await run("select 1 from factors where id = ? and last_step = ? and last_claim = ?", [
        factorId,
        step,
        claim,
      ]);
      return mine.length === 1;
    },
    async replaceRecoverySet(subject, factorId, salt, hashes, now) {
      await inTransaction(db, async (tx) => {
        await tx("delete from factors where subject = ? and method = 'recovery_code'", [subject]);
        await tx(
          `insert into factors (id, subject, method, status, label, recovery_salt, created_at, confirmed_at)
           values (?, ?, 'recovery_code', 'active', 'Recovery codes', ?, ?, ?)`,
          [factorId, subject, salt, now, now],
        );
        await tx(
          "insert into recovery_codes (id, factor_id, code_hash) select gen_random_uuid(), ?, unnest(?::bytea[])",
          [factorId, hashes],
        );
      });
    },
    async useRecoveryCode(factorId, hash, claim, now) {
      const rows = await run(
        `update recovery_codes set used_at = ?, used_claim = ?
         where factor_id = ? and code_hash = ? and used_at is null returning id`,
        [now, claim, factorId, hash],
      );
      if (rows.length !== 1) return undefined;
      await run("update factors set last_used_at = ? where id = ?", [now, factorId]);
      const left = await run<{ n: string }>(
        "select count(*) as n from recovery_codes where factor_id = ? and used_at is null",
        [factorId],
      );
      return Number(left[0]?.n ?? 0);
    },
    async recoveryCodeClaim(factorId, hash) {
      const rows = await run<{ used_claim: string | null }>(
        "select used_claim from recovery_codes where factor_id = ? and code_hash = ? and used_at is not null",
        [factorId, hash],
      );
      return rows.length === 0 ? undefined : (rows[0]?.used_claim ?? null);
    },
    async remove(subject, factorId) {
      const rows = await run("delete from factors where subject = ? and id = ? returning id", [
        subject,
        factorId,
      ]);
      return rows.length === 1;
    },
    async deleteExpiredPending(subject, now) {
      await run("delete from factors where subject = ? and status = 'pending' and confirm_by <= ?", [
        subject,
        now,
      ]);
    },
  };
}
