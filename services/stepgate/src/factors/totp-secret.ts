import type { KeyRing } from "../crypto/key-ring.ts";

/** The binding that ties a sealed TOTP secret to its factor row (AES-GCM associated data). */
export function totpBinding(factorId: string, subject: string): string {
  return `factor:${factorId}:${subject}`;
}

/** Seals a base32 TOTP secret for its row. */
export function sealTotpSecret(keyRing: KeyRing, factorId: string, subject: string, secret: string): Buffer {
  return keyRing.seal(Buffer.from(secret, "utf8"), totpBinding(factorId, subject));
}

/** Opens a sealed TOTP secret; throws if it was altered, moved to another row, or its key left the ring. */
export function openTotpSecret(
  keyRing: KeyRing,
  factorId: string,
  subject: string,
  sealed: Uint8Array,
): string {
  return keyRing.open(sealed, totpBinding(factorId, subject)).toString("utf8");
}
