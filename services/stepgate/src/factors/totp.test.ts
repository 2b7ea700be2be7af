import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NodeCryptoPlugin } from "@otplib/plugin-crypto-node";
import { generateSync } from "otplib";
import { isKeyUriLabelPart, matchTotp, totpCode, totpUri } from "./totp.ts";

// RFC 6238 Appendix B: the SHA-1 seed "12345678901234567890" and its 8-digit codes.
const rfcSecret = new TextEncoder().encode("12345678901234567890");
const rfcVectors: [number, string][] = [
  [59, "94287082"],
  [1111111109, "07081804"],
  [1111111111, "14050471"],
  [1234567890, "89005924"],
  [2000000000, "69279037"],
  [20000000000, "65353130"],
];

describe("totp", () => {
  it("passes the RFC 6238 SHA-1 test vectors", () => {
    for (const [epoch, expected] of rfcVectors) {
      const code = generateSync({ secret: rfcSecret, epoch, digits: 8, crypto: new NodeCryptoPlugin() });
      assert.equal(code, expected, `T=${epoch}`);
    }
  });

  const secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
  const now = 1_800_000_000;

  it("accepts the current step and one step of skew either way, returning the step", () => {
    const step = Math.floor(now / 30);
    assert.equal(matchTotp(secret, totpCode(secret, now), now), step);
    assert.equal(matchTotp(secret, totpCode(secret, now - 30), now), step - 1);
    assert.equal(matchTotp(secret, totpCode(secret, now + 30), now), step + 1);
  });

  it("refuses two steps of skew, wrong codes and malformed input", () => {
    assert.equal(matchTotp(secret, totpCode(secret, now - 60), now), undefined);
    assert.equal(matchTotp(secret, totpCode(secret, now + 60), now), undefined);
    const wrong = String((Number(totpCode(secret, now)) + 1) % 1_000_000).padStart(6, "0");
    assert.equal(matchTotp(secret, wrong, now), undefined);
    for (const bad of ["", "12345", "1234567", "abcdef", " 123456"])
      assert.equal(matchTotp(secret, bad, now), undefined);
  });

  it("refuses a colon, raw or percent-encoded, in the Key URI label's issuer or account name", () => {
    for (const part of ["corp:alice", "corp%3Aalice", "corp%3aalice"]) {
      assert.equal(isKeyUriLabelPart(part), false, part);
      assert.throws(() => totpUri("Stepgate", part, secret), TypeError);
      assert.throws(() => totpUri(part, "alice", secret), TypeError);
    }
    assert.equal(isKeyUriLabelPart("alice@example.com"), true);
    assert.equal(
      totpUri("Stepgate", "a b", secret),
      `otpauth://totp/Stepgate:a%20b?secret=${secret}&issuer=Stepgate`,
    );
  });
});
