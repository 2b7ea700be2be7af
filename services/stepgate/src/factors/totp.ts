import { NodeCryptoPlugin } from "@otplib/plugin-crypto-node";
import { generateSecret, generateSync, generateURI, verifySync } from "otplib";

const crypto = new NodeCryptoPlugin();
const period = 30;

/** A new 160-bit TOTP secret, base32 (RFC 4226 recommends 160 bits). */
export function newTotpSecret(): string {
  return generateSecret({ length: 20, crypto });
}

/**
 * True when `value` may stand as the issuer or the account name in a Key URI label
 * ("issuer:account"): neither may contain a colon, raw or percent-encoded (Key URI Format).
 */
export function isKeyUriLabelPart(value: string): boolean {
  return !/:|%3a/i.test(value);
}

/**
 * The otpauth:// URI authenticator apps read from a QR code (Key URI Format: label
 * "issuer:account", `secret` base32, SHA-1, 6 digits, 30 s). Throws a TypeError when the issuer or
 * account name contains a colon: check them with `isKeyUriLabelPart` first.
 */
export function totpUri(issuer: string, accountName: string, secret: string): string {
  if (!isKeyUriLabelPart(issuer) || !isKeyUriLabelPart(accountName)) {
    throw new TypeError("a Key URI issuer or account name must not contain a colon");
  }
  return generateURI({ issuer, label: accountName, secret, period, digits: 6, algorithm: "sha1" });
}

/** The code for `epochSeconds`; used by tests and the dev walkthrough. */
export function totpCode(secret: string, epochSeconds: number): string {
  return generateSync({ secret, epoch: epochSeconds, period, crypto });
}

/**
 * Checks a code with at most one step of skew either way (RFC 6238 5.2) and returns the
 * matched time step, or undefined. Replay is the caller's job: it must claim the step.
 */
export function matchTotp(secret: string, code: string, epochSeconds: number): number | undefined {
  if (!/^\d{6}$/.test(code)) return undefined;
  const result = verifySync({
    secret,
    token: code,
    epoch: epochSeconds,
    period,
    epochTolerance: period,
    crypto,
  });
  // With the totp strategy a valid result carries the matched RFC 6238 time step.
  return result.valid ? (result as { timeStep: number }).timeStep : undefined;
}
