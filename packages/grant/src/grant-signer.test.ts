import assert from "node:assert/strict";
import { generateKeyPairSync, verify } from "node:crypto";
import { describe, it } from "node:test";
import type { GrantClaims } from "./grant-claims.ts";
import { createGrantSigner } from "./grant-signer.ts";

const claims: GrantClaims = {
  iss: "https://stepgate.test",
  sub: "user-1",
  sid: "session-1",
  aud: "payments",
  action: "payout.create",
  acr: "aal2",
  amr: ["otp"],
  auth_time: 1_800_000_000,
  iat: 1_800_000_000,
  exp: 1_800_000_300,
  jti: "grant-1",
};

describe("createGrantSigner", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  it("writes a compact JWS with the grant header, the claims and an Ed25519 signature", () => {
    const token = createGrantSigner({ kid: "k1", privateKey }).sign(claims);
    const [header, payload, signature] = token.split(".");
    assert.ok(header !== undefined && payload !== undefined && signature !== undefined);
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "base64url without padding");
    assert.equal(
      Buffer.from(header, "base64url").toString(),
      '{"alg":"EdDSA","typ":"stepgate-grant+jwt","kid":"k1"}',
    );
    assert.deepEqual(JSON.parse(Buffer.from(payload, "base64url").toString()), claims);
    assert.ok(
      verify(null, Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, "base64url")),
    );
  });

  it("exposes its kid", () => {
    assert.equal(createGrantSigner({ kid: "k1", privateKey }).kid, "k1");
  });

  it("refuses a public key or another algorithm", () => {
    assert.throws(() => createGrantSigner({ kid: "k1", privateKey: publicKey }), /ed25519 private key/);
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey;
    assert.throws(() => createGrantSigner({ kid: "k1", privateKey: ec }), /ed25519 private key/);
  });
});
