import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import { importJwk, publicJwk } from "./jwk.ts";

describe("publicJwk", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  it("publishes the public key with its kid", () => {
    const jwk = publicJwk("k1", publicKey);
    assert.deepEqual(Object.keys(jwk).sort(), ["alg", "crv", "kid", "kty", "use", "x"]);
    assert.equal(jwk.kid, "k1");
    assert.equal(jwk.x, publicKey.export({ format: "jwk" }).x);
  });

  it("never copies the private part of a private key", () => {
    const jwk = publicJwk("k1", privateKey);
    assert.equal("d" in jwk, false);
    assert.deepEqual(jwk, publicJwk("k1", publicKey));
  });

  it("refuses other key types", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    assert.throws(() => publicJwk("k1", ec), /ed25519/);
  });
});

describe("importJwk", () => {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  it("imports a published key as a public KeyObject", () => {
    const key = importJwk(publicJwk("k1", publicKey));
    assert.equal(key?.type, "public");
    assert.ok(key?.equals(publicKey));
  });

  it("imports only the public part of a JWK that also holds d", () => {
    const full = { ...privateKey.export({ format: "jwk" }), kid: "k1" };
    assert.equal(importJwk(full)?.type, "public");
  });

  it("skips anything that is not an Ed25519 signing key", () => {
    const good = publicJwk("k1", publicKey);
    for (const odd of [
      null,
      "key",
      { ...good, kty: "EC" },
      { ...good, crv: "X25519" },
      { ...good, alg: "ES256" },
      { ...good, use: "enc" },
      { ...good, x: "not-a-key" },
      { ...good, kid: 1 },
    ]) {
      assert.equal(importJwk(odd), undefined, JSON.stringify(odd));
    }
  });
});
