import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { GrantClaims } from "./grant-claims.ts";
import { createRevocationSet, sessionRevocationKey } from "./revocation-set.ts";

const claims = (over: Partial<GrantClaims> = {}): GrantClaims => ({
  iss: "stepgate",
  sub: "alice",
  sid: "s1",
  aud: "payments",
  action: "payments.transfer",
  acr: "aal2",
  amr: ["otp"],
  auth_time: 1,
  iat: 1,
  exp: 2,
  jti: "j1",
  fid: "f1",
  ...over,
});

describe("revocation set", () => {
  it("names the revocation that ends a grant: its session, factor or jti", () => {
    let now = 1000;
    const set = createRevocationSet(() => now);
    assert.equal(set.revoking(claims()), undefined);
    set.add({ kind: "session_ended", target: sessionRevocationKey("alice", "s1"), expiresAtMs: 5000 });
    assert.equal(set.revoking(claims()), "session_ended");
    assert.equal(set.revoking(claims({ sid: "s2", jti: "j2" })), undefined, "another session of the subject");
    assert.equal(
      set.revoking(claims({ sub: "bob", jti: "j3" })),
      undefined,
      "the same session id of another subject",
    );
    set.add({ kind: "factor_ended", target: "f9", expiresAtMs: 5000 });
    assert.equal(set.revoking(claims({ sid: "s2", jti: "j4", fid: "f9" })), "factor_ended");
    set.add({ kind: "grant_consumed", target: "j5", expiresAtMs: 5000 });
    assert.equal(set.revoking(claims({ sid: "s2", jti: "j5" })), "grant_consumed");
    now = 5000;
    assert.equal(set.revoking(claims()), undefined, "forgotten once no grant it concerns can be valid");
    assert.equal(set.size, 0);
  });

  it("ignores a revocation already expired, and adding one twice keeps one entry", () => {
    const set = createRevocationSet(() => 1000);
    set.add({ kind: "factor_ended", target: "f1", expiresAtMs: 999 });
    assert.equal(set.size, 0);
    set.add({ kind: "factor_ended", target: "f1", expiresAtMs: 2000 });
    set.add({ kind: "factor_ended", target: "f1", expiresAtMs: 1500 });
    assert.equal(set.size, 1);
  });

  it("tells of retired keys", () => {
    const set = createRevocationSet(() => 1000);
    const told: string[] = [];
    set.onKeyRetired((kid) => told.push(kid));
    set.add({ kind: "key_retired", target: "k1", expiresAtMs: 2000 });
    assert.deepEqual(told, ["k1"]);
    assert.equal(set.keyRetired("k1"), true);
    assert.equal(set.keyRetired("k2"), false);
  });

  it("length-prefixes the session digest: no two (subject, session) pairs share one by concatenation", () => {
    assert.notEqual(sessionRevocationKey("ab", "c"), sessionRevocationKey("a", "bc"));
    assert.match(sessionRevocationKey("alice", "s1"), /^[\w-]{43}$/);
  });
});
