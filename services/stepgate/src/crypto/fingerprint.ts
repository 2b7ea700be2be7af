import { createHmac, createSecretKey, randomBytes } from "node:crypto";
import { ConfigError } from "../config/config-error.ts";
import type { KeyRing } from "./key-ring.ts";

/** A keyed hash (HMAC-SHA256, base64url) of its parts: a stored one reveals nothing about what it came from. */
export type Fingerprint = (...parts: string[]) => string;

/** Fingerprints under a 32-byte key. */
export function createFingerprint(key: Uint8Array): Fingerprint {
  const hmacKey = createSecretKey(key);
  return (...parts) => createHmac("sha256", hmacKey).update(parts.join("\u0000")).digest("base64url");
}

/** The binding of a fleet-wide secret to its row in service_secrets (AES-GCM associated data). */
export function serviceSecretBinding(name: string): string {
  return `service_secret:${name}`;
}

/** Where a fleet-wide secret is kept: returns the stored sealed value, storing `candidate` if none. */
export type SecretSlot = (candidate: { sealed: Buffer; keyId: string }) => Promise<Buffer>;

/**
 * The fleet's fingerprint key: 32 random bytes made once, kept sealed in `slot`. Every replica
 * reads the same key whichever encryption key is active, so a Verify retried on another replica
 * finds its recorded result after STEPGATE_ENCRYPTION_KEY_ID changes. Fails with a ConfigError
 * if the ring lacks the key that sealed it (keep that key in the ring while the secret uses it).
 */
export async function loadFingerprint(keyRing: KeyRing, slot: SecretSlot): Promise<Fingerprint> {
  const binding = serviceSecretBinding("fingerprint");
  const sealed = await slot({ sealed: keyRing.seal(randomBytes(32), binding), keyId: keyRing.activeKeyId });
  try {
    return createFingerprint(keyRing.open(sealed, binding));
  } catch {
    throw new ConfigError(
      `STEPGATE_ENCRYPTION_KEYS: cannot open the fingerprint key; the ring must hold key "${keyRing.keyIdOf(sealed)}" that sealed it`,
    );
  }
}
