import assert from "node:assert/strict";

/** What a Key URI names, once it has passed `assertKeyUri`. */
export interface KeyUri {
  issuer: string;
  accountName: string;
  secret: string;
}

/**
 * Asserts `uri` follows the Key URI Format authenticator apps read
 * (otpauth://totp/ISSUER:ACCOUNT?secret=BASE32&issuer=ISSUER, optional algorithm SHA1, digits 6,
 * period 30) and returns its parts: a label with exactly one separator, and an issuer parameter
 * equal to the label's prefix.
 */
export function assertKeyUri(uri: string): KeyUri {
  const url = new URL(uri);
  assert.equal(url.protocol, "otpauth:", uri);
  assert.equal(url.host, "totp", uri);
  const label = url.pathname.slice(1);
  assert.ok(label.length > 0 && !label.includes("/"), `one label segment: ${uri}`);
  const separators = label.match(/:|%3a/gi) ?? [];
  assert.equal(separators.length, 1, `exactly one issuer:account separator in ${label}`);
  const [issuer, accountName] = label.split(/:|%3a/i).map((part) => decodeURIComponent(part)) as [
    string,
    string,
  ];
  assert.ok(issuer.length > 0 && accountName.length > 0, uri);
  const params = url.searchParams;
  const known = new Set(["secret", "issuer", "algorithm", "digits", "period"]);
  for (const name of params.keys()) assert.ok(known.has(name), `unknown parameter ${name}`);
  const secret = params.get("secret") ?? "";
  assert.match(secret, /^[A-Z2-7]+$/, "secret is unpadded base32");
  assert.equal(params.get("issuer"), issuer, "issuer parameter matches the label's issuer");
  assert.equal(params.get("algorithm") ?? "SHA1", "SHA1");
  assert.equal(params.get("digits") ?? "6", "6");
  assert.equal(params.get("period") ?? "30", "30");
  return { issuer, accountName, secret };
}
