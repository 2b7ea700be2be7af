import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from "node:crypto";
import type { Jwk } from "@stepgate/grant";
import { ConfigError } from "../config/config-error.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { SigningKeyStore, StoredSigningKey } from "../store/signing-key-store.ts";
import type { StartupCopies } from "../store/startup-copies.ts";

/** The key that signs new grants, and every key a grant may still be signed with. */
export interface SigningKeys {
  active: { kid: string; privateKey: KeyObject };
  published: Jwk[];
}

const binding = (kid: string) => `signing_key:${kid}`;

/** RFC 7638 thumbprint: a kid every replica derives the same way from the key itself. */
function thumbprint(x: string): string {
  return createHash("sha256").update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest("base64url");
}

export interface SigningKeysDeps {
  store: SigningKeyStore;
  /** Seals new private keys and opens the active one. */
  keyRing: KeyRing;
  /** Where the keys, still sealed, are copied for a start while PostgreSQL is down. */
  copies: StartupCopies;
}

interface CopiedKey extends Omit<StoredSigningKey, "sealedPrivateKey"> {
  sealedPrivateKey: string;
}

/** The stored keys, created if there is none; from the startup copy while PostgreSQL is down. */
async function storedKeys({ store, keyRing, copies }: SigningKeysDeps): Promise<StoredSigningKey[]> {
  try {
    const rows = await createdIfNone(store, keyRing);
    const copy: CopiedKey[] = rows.map((r) => ({
      ...r,
      sealedPrivateKey: r.sealedPrivateKey.toString("base64"),
    }));
    await copies.save("signing-keys", JSON.stringify(copy)).catch(() => {});
    return rows;
  } catch (error) {
    if (!(error instanceof DependencyUnavailableError)) throw error;
    const copy = await copies.load("signing-keys").catch(() => null);
    if (copy === null) throw error;
    return (JSON.parse(copy) as CopiedKey[]).map((r) => ({
      ...r,
      sealedPrivateKey: Buffer.from(r.sealedPrivateKey, "base64"),
    }));
  }
}

async function createdIfNone(store: SigningKeyStore, keyRing: KeyRing): Promise<StoredSigningKey[]> {
  let rows = await store.list();
  if (!rows.some((r) => r.active)) {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const x = publicKey.export({ format: "jwk" }).x as string;
    const kid = thumbprint(x);
    const jwk: Jwk = { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" };
    const sealedPrivateKey = keyRing.seal(privateKey.export({ format: "der", type: "pkcs8" }), binding(kid));
    await store.insertActive({ kid, publicJwk: jwk, sealedPrivateKey }, keyRing.activeKeyId);
    rows = await store.list();
  }
  return rows;
}

/**
 * Loads the signing keys, creating the first one if there is none. Replicas that start together
 * each try to insert a key; the store lets exactly one win. While PostgreSQL is down, the keys
 * come from the startup copy the last start saved. Fails with a ConfigError when the key ring
 * cannot open the active key (another ring sealed it), or with the DependencyUnavailableError
 * when PostgreSQL is down and there is no copy.
 */
export async function loadSigningKeys(deps: SigningKeysDeps): Promise<SigningKeys> {
  const { keyRing } = deps;
  const rows = await storedKeys(deps);
  const activeRow = rows.find((r) => r.active);
  if (!activeRow) throw new Error("no active signing key after creation");
  let der: Buffer;
  try {
    der = keyRing.open(activeRow.sealedPrivateKey, binding(activeRow.kid));
  } catch {
    // The usual cause is a replica started with another key ring than the one that sealed the key.
    throw new ConfigError(
      `STEPGATE_ENCRYPTION_KEYS: cannot open the signing key; the ring must hold key "${keyRing.keyIdOf(activeRow.sealedPrivateKey)}" that sealed it`,
    );
  }
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  // A key that does not match its published half would sign grants nobody can verify.
  const x = createPublicKey(privateKey).export({ format: "jwk" }).x;
  if (x !== activeRow.publicJwk.x) throw new Error("active signing key does not match its public key");
  return { active: { kid: activeRow.kid, privateKey }, published: rows.map((r) => r.publicJwk) };
}

/** The binding of a sealed private key to its row, `signing_key:<kid>` (AES-GCM associated data). */
export const signingKeyBinding = binding;
