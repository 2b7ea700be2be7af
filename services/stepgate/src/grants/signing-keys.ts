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
import type { SigningKeyStore } from "../store/signing-key-store.ts";

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
}

/**
 * Loads the signing keys, creating the first one if there is none. Replicas that start together
 * each try to insert a key; the store lets exactly one win. Fails with a ConfigError when the key
 * ring cannot open the active key (another ring sealed it).
 */
export async function loadSigningKeys({ store, keyRing }: SigningKeysDeps): Promise<SigningKeys> {
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
