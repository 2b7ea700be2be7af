import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { parseKeyRing } from "../crypto/key-ring.ts";
import type { Challenge } from "../domain/challenge.ts";
import { openTotpSecret, sealTotpSecret } from "../factors/totp-secret.ts";
import { sealedResultOf } from "../stepup/idempotency.ts";
import { verifyResultBinding } from "../stepup/verify.ts";
import {
  challengeIsCurrent,
  factorCacheIsCurrent,
  isCurrent,
  resealChallenge,
  resealed,
  resealVerifyResult,
  rowBinding,
  verifyResultIsCurrent,
} from "./sealed-values.ts";

const a = `a:${randomBytes(32).toString("base64")}`;
const b = `b:${randomBytes(32).toString("base64")}`;
const onA = parseKeyRing(a);
const mixed = parseKeyRing(`${a},${b}`, "b");
const onlyB = parseKeyRing(b);

describe("re-sealing one value", () => {
  it("moves a factor row's secret to the active key, still bound to its row", () => {
    const row = {
      id: "f-1",
      subject: "alice",
      sealed: sealTotpSecret(onA, "f-1", "alice", "JBSWY3DPEHPK3PXP"),
    };
    const again = resealed(mixed, row.sealed, rowBinding("factors", row));
    assert.equal(onlyB.keyIdOf(again), "b");
    assert.equal(openTotpSecret(onlyB, "f-1", "alice", again), "JBSWY3DPEHPK3PXP");
    assert.throws(() => openTotpSecret(onlyB, "f-1", "mallory", again), "another row's binding fails");
  });

  it("binds signing keys and fleet secrets as their owners do", () => {
    assert.equal(
      rowBinding("signing_keys", { id: "kid-1", subject: null, sealed: Buffer.alloc(0) }),
      "signing_key:kid-1",
    );
    assert.equal(
      rowBinding("service_secrets", { id: "fingerprint", subject: null, sealed: Buffer.alloc(0) }),
      "service_secret:fingerprint",
    );
  });

  it("fails on a value whose key is not in the ring", () => {
    assert.throws(() => resealed(onlyB, onA.seal(Buffer.from("x"), "k"), "k"), /not in the ring/);
  });
});

describe("re-sealing hot entries", () => {
  const challenge: Challenge = {
    id: "c-1",
    subject: "alice",
    sessionId: "s",
    action: "payments.transfer",
    caller: "payments",
    acr: "aal2",
    methods: ["totp"],
    expiresAt: 0,
    totp: [{ id: "f-1", sealed: sealTotpSecret(onA, "f-1", "alice", "JBSWY3DPEHPK3PXP").toString("base64") }],
  };

  it("re-seals a challenge's TOTP copies and leaves a current one alone", () => {
    const stored = JSON.stringify(challenge);
    assert.equal(challengeIsCurrent(mixed, stored), false);
    const again = resealChallenge(mixed, stored) ?? "";
    assert.equal(challengeIsCurrent(onlyB, again), true);
    const copy = (JSON.parse(again) as Challenge).totp?.[0];
    assert.equal(
      openTotpSecret(onlyB, "f-1", "alice", Buffer.from(copy?.sealed ?? "", "base64")),
      "JBSWY3DPEHPK3PXP",
    );
    assert.equal(resealChallenge(mixed, again), undefined);
  });

  it("re-seals a recorded Verify result for its challenge and claim; a recorded failure holds nothing", () => {
    const binding = verifyResultBinding("c-1", "claim-1");
    const done = JSON.stringify({
      state: "done",
      fingerprint: "fp",
      sealed: onA.seal(Buffer.from('{"grant":1}'), binding).toString("base64"),
    });
    assert.equal(verifyResultIsCurrent(mixed, done), false);
    const again = resealVerifyResult(mixed, done, "c-1", "claim-1") ?? "";
    const sealed = Buffer.from(sealedResultOf(again) ?? "", "base64");
    assert.equal(onlyB.open(sealed, binding).toString(), '{"grant":1}');
    assert.equal(JSON.parse(again).fingerprint, "fp");
    const failed = JSON.stringify({
      state: "failed",
      fingerprint: "fp",
      reason: "WRONG_CODE",
      message: "m",
      metadata: {},
    });
    assert.equal(verifyResultIsCurrent(onlyB, failed), true);
    assert.equal(resealVerifyResult(mixed, failed, "c-1", "claim-1"), undefined);
  });

  it("reads a factor cache entry's key from its `version:sealed` text", () => {
    const entry = `3:${onA.seal(Buffer.from("{}"), "factor-cache:alice").toString("base64")}`;
    assert.equal(factorCacheIsCurrent(mixed, entry), false);
    assert.equal(factorCacheIsCurrent(onA, entry), true);
    assert.equal(isCurrent(mixed, mixed.seal(Buffer.from("x"), "y")), true);
  });
});
