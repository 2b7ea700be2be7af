import type { Jwk } from "@stepgate/grant";
import type { Pg } from "./sql.ts";

/** A stored grant-signing key: its public JWK and its private half sealed with the key ring. */
export interface StoredSigningKey {
  kid: string;
  publicJwk: Jwk;
  sealedPrivateKey: Buffer;
  active: boolean;
}

/** Grant-signing keys in PostgreSQL, oldest first. */
export interface SigningKeyStore {
  list(): Promise<StoredSigningKey[]>;
  /**
   * Inserts an active key unless one is active already (a unique partial index lets exactly one
   * of several replicas that start together win). `keyId` names the key-ring key that sealed it.
   */
  insertActive(key: Omit<StoredSigningKey, "active">, keyId: string): Promise<void>;
}

export function createSigningKeyStore(pg: Pg): SigningKeyStore {
  const run = pg.sql;
  return {
    async list() {
      const rows = await run<{ kid: string; public_jwk: Jwk; private_key: Buffer; active: boolean }>(
        "select kid, public_jwk, private_key, active from signing_keys order by created_at",
      );
      return rows.map((r) => ({
        kid: r.kid,
        publicJwk: r.public_jwk,
        sealedPrivateKey: r.private_key,
        active: r.active,
      }));
    },
    async insertActive(key, keyId) {
      await run(
        `insert into signing_keys (kid, public_jwk, private_key, key_id, active, created_at)
         values (?, ?, ?, ?, true, now()) on conflict do nothing`,
        [key.kid, JSON.stringify(key.publicJwk), key.sealedPrivateKey, keyId],
      );
    },
  };
}
