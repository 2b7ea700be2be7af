import { randomBytes, randomUUID } from "node:crypto";
import { parseKeyRing } from "@stepgate/server/crypto/key-ring";
import { newTotpSecret } from "@stepgate/server/factors/totp";
import { sealTotpSecret } from "@stepgate/server/factors/totp-secret";
import pg from "pg";

/** A subject with one active TOTP factor whose secret the load generators know. */
export interface BenchUser {
  subject: string;
  secret: string;
}

const batchSize = 2000;

/**
 * Writes `count` subjects with an active TOTP factor straight into the `factors` table, sealed with
 * the replicas' key ring and bound to the row the way enrolment binds it. Through the API it would
 * be two RPCs per user (EnrollTotp, ConfirmTotp), a minute of a five-minute run for 20,000 users.
 * Call it after the first replica has created the schema. Subjects are `bench-<run>-<index>`, the
 * index counting from `naming.firstIndex` (default: a new run, from 0).
 */
export async function seedUsers(
  databaseUrl: string,
  encryptionKeys: string,
  count: number,
  naming: { run: string; firstIndex: number } = { run: randomBytes(4).toString("hex"), firstIndex: 0 },
): Promise<BenchUser[]> {
  const ring = parseKeyRing(encryptionKeys);
  const { run } = naming;
  const now = new Date();
  // Confirmed a while ago: any code from the current step on is newer than the last one accepted.
  const lastStep = Math.floor(now.getTime() / 30_000) - 2;
  const users: BenchUser[] = [];
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (let first = 0; first < count; first += batchSize) {
      const ids: string[] = [];
      const subjects: string[] = [];
      const secrets: Buffer[] = [];
      for (let i = first; i < Math.min(count, first + batchSize); i++) {
        const id = randomUUID();
        const subject = `bench-${run}-${naming.firstIndex + i}`;
        const secret = newTotpSecret();
        ids.push(id);
        subjects.push(subject);
        secrets.push(sealTotpSecret(ring, id, subject, secret));
        users.push({ subject, secret });
      }
      await client.query(
        `insert into factors (id, subject, method, status, label, secret, key_id, last_step, created_at, confirmed_at)
         select id, subject, 'totp', 'active', 'Phone', secret, $4, $5, $6, $6
         from unnest($1::uuid[], $2::text[], $3::bytea[]) as t(id, subject, secret)`,
        [ids, subjects, secrets, ring.activeKeyId, lastStep, now],
      );
    }
  } finally {
    await client.end();
  }
  return users;
}
