import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { ConfigError } from "../config/config-error.ts";
import { parseKeyRing } from "./key-ring.ts";

const k1 = randomBytes(32).toString("base64");
const k2 = randomBytes(32).toString("base64");

describe("key ring", () => {
  it("round-trips and records the key id", () => {
    const ring = parseKeyRing(`a:${k1}`);
    const sealed = ring.seal(Buffer.from("secret"), "factor:1");
    assert.equal(ring.keyIdOf(sealed), "a");
    assert.equal(ring.open(sealed, "factor:1").toString(), "secret");
    assert.equal(sealed.includes(Buffer.from("secret")), false);
  });

  it("refuses a ciphertext moved to another row", () => {
    const ring = parseKeyRing(`a:${k1}`);
    const sealed = ring.seal(Buffer.from("secret"), "factor:1");
    assert.throws(() => ring.open(sealed, "factor:2"));
  });

  it("refuses a tampered ciphertext", () => {
    const ring = parseKeyRing(`a:${k1}`);
    const sealed = ring.seal(Buffer.from("secret"), "row");
    sealed[sealed.length - 20] = (sealed[sealed.length - 20] ?? 0) ^ 1;
    assert.throws(() => ring.open(sealed, "row"));
  });

  it("rotates: old ciphertexts open after a new active key is added", () => {
    const old = parseKeyRing(`a:${k1}`);
    const sealed = old.seal(Buffer.from("secret"), "row");
    const rotated = parseKeyRing(`b:${k2},a:${k1}`);
    assert.equal(rotated.activeKeyId, "b");
    assert.equal(rotated.open(sealed, "row").toString(), "secret");
    assert.equal(rotated.keyIdOf(rotated.seal(Buffer.from("x"), "row")), "b");
  });

  it("names the bad key but never its material", () => {
    const short = Buffer.from("too-short").toString("base64");
    assert.throws(
      () => parseKeyRing(`weak:${short}`),
      (e: Error) => {
        return e instanceof ConfigError && e.message.includes('"weak"') && !e.message.includes(short);
      },
    );
    assert.throws(() => parseKeyRing(`a:${k1}`, "missing"), /no key "missing"/);
    assert.throws(() => parseKeyRing(""), ConfigError);
  });
});
