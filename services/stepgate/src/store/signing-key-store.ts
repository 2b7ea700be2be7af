import type { Jwk } from "@stepgate/grant";
import type { Pg } from "./sql.ts";

/** A stored grant-signing key: its public JWK, its private half sealed with the key ring, and its times. */
export interface StoredSigningKey {
  kid: string;
  publicJwk: Jwk;
  sealedPrivateKey: Buffer;
  /** 1 for the fleet's first key, one more for each key after it (unique). */
  generation: number;
  /** When it starts signing, epoch ms; until then it is only published. */
  signsFrom: number;
  /** When it was retired (no longer published nor accepted), epoch ms; undefined while it is not. */
  retiredAt?: number | undefined;
}

/** A key about to be stored: everything but its retirement. */
export type NewSigningKey = Omit<StoredSigningKey, "retiredAt">;

/** Grant-signing keys in PostgreSQL, in generation order. Every method rejects with the store's error. */
export interface SigningKeyStore {
  list(): Promise<StoredSigningKey[]>;
  /**
   * Inserts the key unless its generation is taken (a unique index lets exactly one of several
   * replicas racing to create the next key win). `keyId` names the key-ring key that sealed it;
   * `createdAt` is epoch ms. Resolves true when this call stored it.
   */
  insert(key: NewSigningKey, keyId: string, createdAt: number): Promise<boolean>;
  /**
   * Records that `kid` is retired from `at` (epoch ms), unless it was retired at or before `at`
   * already. Resolves true when this call changed it.
   */
  retire(kid: string, at: number): Promise<boolean>;
}

interface SigningKeyRow {
  kid: string;
  public_jwk: Jwk;
  private_key: Buffer;
  generation: number;
  signs_from: Date | string;
  retired_at: Date | string | null;
}

const ms = (t: Date | string) => new Date(t).getTime();

export function createSigningKeyStore(pg: Pg): SigningKeyStore {
  const run = pg.sql;
  return {
    async list() {
      const rows = await run<SigningKeyRow>(
        `select kid, public_jwk, private_key, generation, signs_from, retired_at
         from signing_keys order by generation`,
      );
      return rows.map((r) => ({
        kid: r.kid,
        publicJwk: r.public_jwk,
        sealedPrivateKey: r.private_key,
        generation: Number(r.generation),
        signsFrom: ms(r.signs_from),
        retiredAt: r.retired_at === null ? undefined : ms(r.retired_at),
      }));
    },
    async insert(key, keyId, createdAt) {
      // `active` only for the first key: replicas of the previous release read it (migration 005).
      const inserted = await run(
        `insert into signing_keys (kid, public_jwk, private_key, key_id, active, created_at, signs_from, generation)
         values ($1, $2, $3, $4, $5, $6, $7, $8) on conflict do nothing returning kid`,
        [
          key.kid,
          JSON.stringify(key.publicJwk),
          key.sealedPrivateKey,
          keyId,
          key.generation === 1,
          new Date(createdAt),
          new Date(key.signsFrom),
          key.generation,
        ],
      );
      return inserted.length === 1;
    },
    async retire(kid, at) {
      const changed = await run(
        `update signing_keys set retired_at = $1 where kid = $2 and (retired_at is null or retired_at > $3)
         returning kid`,
        [new Date(at), kid, new Date(at)],
      );
      return changed.length === 1;
    },
  };
}
