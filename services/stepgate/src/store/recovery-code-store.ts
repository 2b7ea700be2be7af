import { lockSubject } from "./factor-store.ts";
import type { Pg } from "./sql.ts";

/** A subject's active set of recovery codes. */
export interface RecoverySet {
  factorId: string;
  /** One salt for the whole set (each code is hashed with it). */
  salt: Buffer;
  remaining: number;
}

/** A new set of recovery codes, hashed. */
export interface NewRecoverySet {
  subject: string;
  factorId: string;
  salt: Buffer;
  hashes: Buffer[];
  now: Date;
  /** Store it only while the subject has no active factor. */
  onlyFirst: boolean;
}

/** Recovery codes, stored only as salted hashes; using one is a single conditional update. */
export interface RecoveryCodeStore {
  /** The subject's active set, if any. */
  activeSet(subject: string): Promise<RecoverySet | undefined>;
  /**
   * Replaces the subject's set (and its factor row) with a new one and raises its version, in one
   * transaction that holds the subject's version row. With `onlyFirst` (a first factor's
   * authorisation) it replaces nothing and returns undefined if the subject has an active factor,
   * so a racing first factor cannot slip in beside it. Returns the factor ids of the sets it replaced.
   */
  replaceSet(set: NewRecoverySet): Promise<string[] | undefined>;
  /** Marks one unused code used by `claim`; returns the codes left, or undefined if no unused code matched. */
  use(factorId: string, hash: Buffer, claim: string, now: Date): Promise<number | undefined>;
  /** The claim that used a code: undefined if no such used code, null if used with no claim recorded. */
  usedBy(factorId: string, hash: Buffer): Promise<string | null | undefined>;
}

export function createRecoveryCodeStore(pg: Pg): RecoveryCodeStore {
  const run = pg.sql;
  const countUnused = async (factorId: string) => {
    const rows = await run<{ n: string }>(
      "select count(*) as n from recovery_codes where factor_id = $1 and used_at is null",
      [factorId],
    );
    return Number(rows[0]?.n ?? 0);
  };
  return {
    async activeSet(subject) {
      const rows = await run<{ id: string; recovery_salt: Buffer | null }>(
        `select id, recovery_salt from factors
         where subject = $1 and method = 'recovery_code' and status = 'active' order by created_at, id limit 1`,
        [subject],
      );
      const row = rows[0];
      if (!row?.recovery_salt) return undefined;
      return { factorId: row.id, salt: row.recovery_salt, remaining: await countUnused(row.id) };
    },
    async replaceSet({ subject, factorId, salt, hashes, now, onlyFirst }) {
      return pg.transaction(async (tx) => {
        await lockSubject(tx, subject);
        if (onlyFirst) {
          const active = await tx("select 1 from factors where subject = $1 and status = 'active' limit 1", [
            subject,
          ]);
          if (active.length > 0) return undefined;
        }
        const replaced = await tx<{ id: string }>(
          "delete from factors where subject = $1 and method = 'recovery_code' returning id",
          [subject],
        );
        await tx(
          `insert into factors (id, subject, method, status, label, recovery_salt, created_at, confirmed_at)
           values ($1, $2, 'recovery_code', 'active', 'Recovery codes', $3, $4, $5)`,
          [factorId, subject, salt, now, now],
        );
        await tx(
          "insert into recovery_codes (id, factor_id, code_hash) select gen_random_uuid(), $1, unnest($2::bytea[])",
          [factorId, hashes],
        );
        return replaced.map((r) => r.id);
      });
    },
    async use(factorId, hash, claim, now) {
      const rows = await run(
        `update recovery_codes set used_at = $1, used_claim = $2
         where factor_id = $3 and code_hash = $4 and used_at is null returning id`,
        [now, claim, factorId, hash],
      );
      if (rows.length !== 1) return undefined;
      await run("update factors set last_used_at = $1 where id = $2", [now, factorId]);
      return countUnused(factorId);
    },
    async usedBy(factorId, hash) {
      const rows = await run<{ used_claim: string | null }>(
        "select used_claim from recovery_codes where factor_id = $1 and code_hash = $2 and used_at is not null",
        [factorId, hash],
      );
      return rows.length === 0 ? undefined : (rows[0]?.used_claim ?? null);
    },
  };
}
