import { createHmac } from "node:crypto";

/** RFC 6238 time step length, in seconds (Stepgate's TOTP factors use 30 s). */
export const totpStepSeconds = 30;

/** The RFC 6238 time step `epochSeconds` falls in: `floor(epochSeconds / 30)`. */
export const totpStep = (epochSeconds: number): number => Math.floor(epochSeconds / totpStepSeconds);

/**
 * The 6-digit TOTP code (RFC 6238: HMAC-SHA1, 30 s steps) of the base32 `secret` at `epochSeconds`,
 * as an authenticator app shows it. An implementation of the RFC of its own, so the harness does not
 * import the server (packages never import services/); test/fault-lab.test.ts checks that it agrees
 * with `@stepgate/server/factors/totp`'s `totpCode`. Throws a TypeError if `secret` is not base32.
 */
export function totpCode(secret: string, epochSeconds: number): string {
  return codeForStep(secret, totpStep(epochSeconds));
}

/** The 6-digit TOTP code of the base32 `secret` for the RFC 6238 time step `step` (see `totpStep`).
 * Throws a TypeError if `secret` is not base32. */
export function codeForStep(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = (mac[mac.length - 1] ?? 0) & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32Decode(text: string): Buffer {
  const clean = text.toUpperCase().replace(/=+$/, "");
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of clean) {
    const index = alphabet.indexOf(char);
    if (index < 0) throw new TypeError("the TOTP secret is not base32");
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}
