import { randomBytes, randomUUID } from "node:crypto";
import { parseKeyRing } from "@stepgate/server/crypto/key-ring";
import { newTotpSecret } from "@stepgate/server/factors/totp";
import { sealTotpSecret } from "@stepgate/server/factors/totp-secret";
import pg from "pg";
import { type BenchUser, seedUsers } from "../seed-users.ts";

/** How a population was seeded: rows, and seconds for the inserts and for `vacuum analyze`. */
export interface Seeding {
  users: number;
  /** Users whose secrets the generators know (the rest are filler rows no call reads). */
  known: number;
  seconds: number;
  rowsPerSecond: number;
  analyzeSeconds: number;
}

/** Slices of filler and known users, alternating, so the known users' rows are spread over the heap. */
const slices = 10;

/**
 * `total` enrolled users in the `factors` table, of which `known` are real (secrets sealed by the
 * server's own modules, as `seedUsers` writes them) and the rest filler rows written by PostgreSQL
 * itself (`generate_series`): the same columns, an active TOTP factor, a random `secret` of a sealed
 * secret's length that no call opens. Every subject is `bench-<run>-<index>` on one index range, so
 * the known users' index entries lie among the filler's. Then `vacuum analyze factors`, so autovacuum
 * does not start during the measurements and the planner knows the table's size.
 */
export async function seedPopulation(
  databaseUrl: string,
  encryptionKeys: string,
  total: number,
  known: number,
): Promise<{ users: BenchUser[]; seeding: Seeding }> {
  const started = performance.now();
  const run = randomBytes(4).toString("hex");
  const ring = parseKeyRing(encryptionKeys);
  const sealedLength = sealTotpSecret(ring, randomUUID(), "x", newTotpSecret()).length;
  const lastStep = Math.floor(Date.now() / 30_000) - 2;
  const users: BenchUser[] = [];
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const knownCount = Math.min(known, total);
    let index = 0;
    for (let s = 0; s < slices; s++) {
      const filler =
        Math.floor(((total - knownCount) * (s + 1)) / slices) -
        Math.floor(((total - knownCount) * s) / slices);
      if (filler > 0) {
        // Two SHA-512s of the row's index: 128 pseudo-random bytes, cut to a sealed secret's length.
        await client.query(
          `insert into factors (id, subject, method, status, label, secret, key_id, last_step, created_at, confirmed_at)
           select gen_random_uuid(), $1 || g, 'totp', 'active', 'Phone',
                  substring(sha512(int8send(g)) || sha512(int8send(-g)) from 1 for $2), $3, $4, now(), now()
           from generate_series($5::bigint, $6::bigint) as g`,
          [`bench-${run}-`, sealedLength, ring.activeKeyId, lastStep, index, index + filler - 1],
        );
        index += filler;
      }
      const mine = Math.floor((knownCount * (s + 1)) / slices) - Math.floor((knownCount * s) / slices);
      if (mine > 0) {
        users.push(...(await seedUsers(databaseUrl, encryptionKeys, mine, { run, firstIndex: index })));
        index += mine;
      }
    }
    const inserted = performance.now();
    await client.query("vacuum analyze factors");
    const seconds = (inserted - started) / 1000;
    return {
      users,
      seeding: {
        users: total,
        known: users.length,
        seconds,
        rowsPerSecond: total / seconds,
        analyzeSeconds: (performance.now() - inserted) / 1000,
      },
    };
  } finally {
    await client.end();
  }
}
