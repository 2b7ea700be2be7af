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
import type { SigningKeyStore, StoredSigningKey } from "../store/signing-key-store.ts";

/** What a sealed private key is bound to: its own row, so it cannot be moved to another. */
export const sealBinding = (kid: string) => `signing_key:${kid}`;

/** RFC 7638 thumbprint: a kid every replica derives the same way from the key itself. */
function thumbprint(x: string): string {
  return createHash("sha256").update(`{"crv":"Ed25519","kty":"OKP","x":"${x}"}`).digest("base64url");
}

export interface NewSigningKeyDeps {
  store: Pick<SigningKeyStore, "insert">;
  /** Seals the private half with its active key. */
  keyRing: KeyRing;
}

/** The key a call created: its kid, generation and when it starts signing (epoch ms). */
export interface CreatedSigningKey {
  kid: string;
  generation: number;
  signsFrom: number;
}

/**
 * Generates an Ed25519 key, seals its private half and stores it as `generation`, signing from
 * `signsFrom` (epoch ms). Resolves undefined when another replica stored that generation first;
 * rejects with the store's error.
 */
export async function createSigningKey(
  { store, keyRing }: NewSigningKeyDeps,
  at: { generation: number; signsFrom: number; now: number },
): Promise<CreatedSigningKey | undefined> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x as string;
  const kid = thumbprint(x);
  const publicJwk: Jwk = { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" };
  const sealedPrivateKey = keyRing.seal(
    privateKey.export({ format: "der", type: "pkcs8" }),
    sealBinding(kid),
  );
  const key = { kid, publicJwk, sealedPrivateKey, generation: at.generation, signsFrom: at.signsFrom };
  const stored = await store.insert(key, keyRing.activeKeyId, at.now);
  return stored ? { kid, generation: at.generation, signsFrom: at.signsFrom } : undefined;
}

/**
 * Opens a stored key's private half. Throws a ConfigError when the key ring cannot open it, and an
 * Error when it does not match its published half, which would sign grants nobody can verify.
 */
export function openSigningKey(keyRing: KeyRing, key: StoredSigningKey): KeyObject {
  let der: Buffer;
  try {
    der = keyRing.open(key.sealedPrivateKey, sealBinding(key.kid));
  } catch {
    // The usual cause is a replica started with another key ring than the one that sealed the key.
    throw new ConfigError(
      `STEPGATE_ENCRYPTION_KEYS: cannot open the signing key; the ring must hold key "${keyRing.keyIdOf(key.sealedPrivateKey)}" that sealed it`,
    );
  }
  const privateKey = createPrivateKey({ key: der, format: "der", type: "pkcs8" });
  if (createPublicKey(privateKey).export({ format: "jwk" }).x !== key.publicJwk.x) {
    throw new Error("signing key does not match its public key");
  }
  return privateKey;
}
