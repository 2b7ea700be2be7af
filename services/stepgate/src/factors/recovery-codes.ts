import { randomBytes, randomInt, scrypt, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";

const scryptAsync = promisify(scrypt) as (
  pw: string,
  salt: Buffer,
  len: number,
  opts: object,
) => Promise<Buffer>;

// Crockford-like alphabet without look-alikes (0/o, 1/l/i): 32 symbols, 5 bits each.
const alphabet = "abcdefghjkmnpqrstuvwxyz23456789";
const codeLength = 10;
export const recoveryCodeCount = 10;

// NIST SP 800-63B 5.1.2.2: look-up secrets under 112 bits are stored salted, through a KDF.
const kdf = { N: 1 << 14, r: 8, p: 1, maxmem: 64 * 1024 * 1024 };

/** Ten new codes shaped `xxxxx-xxxxx` (about 49 bits each). */
export function newRecoveryCodes(): string[] {
  return Array.from({ length: recoveryCodeCount }, () => {
    let code = "";
    for (let i = 0; i < codeLength; i++) code += alphabet[randomInt(alphabet.length)];
    return `${code.slice(0, 5)}-${code.slice(5)}`;
  });
}

/** Lowercases and drops spaces and dashes, so users can type codes loosely. */
export function normalizeRecoveryCode(code: string): string {
  return code.toLowerCase().replace(/[\s-]/g, "");
}

export function newRecoverySalt(): Buffer {
  return randomBytes(16);
}

/** The stored form of a code; one salt per set, so checking an answer costs one KDF run. */
export function hashRecoveryCode(code: string, salt: Buffer): Promise<Buffer> {
  return scryptAsync(normalizeRecoveryCode(code), salt, 32, kdf);
}

export function sameHash(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Cheap shape check before spending a KDF run. */
export function looksLikeRecoveryCode(code: string): boolean {
  const n = normalizeRecoveryCode(code);
  return n.length === codeLength && [...n].every((c) => alphabet.includes(c));
}
