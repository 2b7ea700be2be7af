import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from "node:crypto";
import { ConfigError } from "../config/config-error.ts";

const version = 1;
const ivLength = 12;
const tagLength = 16;

/** Encrypts small secrets at rest with AES-256-GCM under named keys, so keys can rotate. */
export interface KeyRing {
  /** The id of the key new ciphertexts are written with. */
  readonly activeKeyId: string;
  /** Seals `plaintext`; `binding` (e.g. the row's identity) must be given again to open it. */
  seal(plaintext: Uint8Array, binding: string): Buffer;
  /** Opens a sealed value; throws if it was altered, moved to another row, or its key is gone. */
  open(sealed: Uint8Array, binding: string): Buffer;
  /** The key id a sealed value was written with. */
  keyIdOf(sealed: Uint8Array): string;
}

/**
 * Parses `id:base64key,id:base64key` (32-byte keys). The active key is `activeKeyId`, or the
 * first one listed. Errors name the key id, never key material.
 */
export function parseKeyRing(spec: string, activeKeyId?: string): KeyRing {
  const keys = new Map<string, Buffer>();
  for (const entry of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const colon = entry.indexOf(":");
    const id = entry.slice(0, colon);
    const key = Buffer.from(entry.slice(colon + 1), "base64");
    if (colon < 1 || !/^[A-Za-z0-9_-]{1,32}$/.test(id)) {
      throw new ConfigError("STEPGATE_ENCRYPTION_KEYS: each entry must be id:base64key with a short id");
    }
    if (key.length !== 32) throw new ConfigError(`STEPGATE_ENCRYPTION_KEYS: key "${id}" must be 32 bytes`);
    keys.set(id, key);
  }
  const active = activeKeyId ?? keys.keys().next().value;
  if (active === undefined) throw new ConfigError("STEPGATE_ENCRYPTION_KEYS: no key given");
  if (!keys.has(active)) throw new ConfigError(`STEPGATE_ENCRYPTION_KEY_ID: no key "${active}" in the ring`);
  return createKeyRing(keys, active);
}

function createKeyRing(raw: Map<string, Buffer>, activeKeyId: string): KeyRing {
  // Key objects made once: passing raw bytes makes Node build one on every call.
  const keys = new Map<string, KeyObject>([...raw].map(([id, bytes]) => [id, createSecretKey(bytes)]));
  const keyIdOf = (sealed: Uint8Array) => {
    const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (buf.length < 2 || buf[0] !== version) throw new Error("sealed value has an unknown format");
    return buf.subarray(2, 2 + (buf[1] ?? 0)).toString("utf8");
  };
  return {
    activeKeyId,
    keyIdOf,
    seal(plaintext, binding) {
      const key = keys.get(activeKeyId) as KeyObject;
      const kid = Buffer.from(activeKeyId, "utf8");
      const iv = randomBytes(ivLength);
      const header = Buffer.concat([Buffer.from([version, kid.length]), kid, iv]);
      const cipher = createCipheriv("aes-256-gcm", key, iv);
      // The header and the row binding are authenticated, so a ciphertext cannot be moved.
      cipher.setAAD(Buffer.concat([header, Buffer.from(binding, "utf8")]));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([header, body, cipher.getAuthTag()]);
    },
    open(sealed, binding) {
      const buf = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
      const kid = keyIdOf(buf);
      const key = keys.get(kid);
      if (!key) throw new Error(`encryption key "${kid}" is not in the ring`);
      const headerLength = 2 + Buffer.byteLength(kid) + ivLength;
      if (buf.length < headerLength + tagLength) throw new Error("sealed value is truncated");
      const header = buf.subarray(0, headerLength);
      const decipher = createDecipheriv("aes-256-gcm", key, header.subarray(headerLength - ivLength));
      decipher.setAAD(Buffer.concat([header, Buffer.from(binding, "utf8")]));
      decipher.setAuthTag(buf.subarray(buf.length - tagLength));
      return Buffer.concat([
        decipher.update(buf.subarray(headerLength, buf.length - tagLength)),
        decipher.final(),
      ]);
    },
  };
}
