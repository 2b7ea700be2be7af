import assert from "node:assert/strict";
import { generateKeyPairSync, type KeyObject, sign } from "node:crypto";
import { describe, it } from "node:test";
import type { GrantClaims } from "./grant-claims.ts";
import { GrantError, type GrantErrorReason } from "./grant-error.ts";
import { createGrantSigner } from "./grant-signer.ts";
import { createGrantVerifier, type GrantExpectations, type GrantVerifierOptions } from "./grant-verifier.ts";
import { type Jwk, publicJwk } from "./jwk.ts";

const t0 = 1_800_000_000;
const issuer = "https://stepgate.test";
const expect: GrantExpectations = { audience: "payments", action: "payout.create" };

function claims(overrides: Partial<GrantClaims> = {}): GrantClaims {
  return {
    iss: issuer,
    sub: "user-1",
    sid: "session-1",
    aud: "payments",
    action: "payout.create",
    acr: "aal2",
    amr: ["otp"],
    auth_time: t0 - 60,
    iat: t0,
    exp: t0 + 300,
    jti: "grant-1",
    ...overrides,
  };
}

function keyPair(kid: string) {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { kid, privateKey, jwk: publicJwk(kid, publicKey) };
}

function encode(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

// Signs any header and payload, to reach the checks that come after the signature.
function forge(header: unknown, payload: unknown, privateKey: KeyObject): string {
  const input = `${encode(header)}.${encode(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString("base64url")}`;
}

// A verifier with a fake clock and a key set the test can change and count fetches of.
function setup(options: Partial<GrantVerifierOptions> = {}) {
  const k1 = keyPair("k1");
  const state = { nowMs: t0 * 1000, published: [k1.jwk] as Jwk[], fetches: 0 };
  const verifier = createGrantVerifier({
    keys: async () => {
      state.fetches++;
      // Answer on a later turn, as a network fetch would, so concurrent misses overlap it.
      await new Promise((resolve) => setImmediate(resolve));
      return state.published;
    },
    issuer,
    now: () => state.nowMs,
    ...options,
  });
  return { k1, state, verifier, signer: createGrantSigner(k1) };
}

async function rejects(promise: Promise<unknown>, reason: GrantErrorReason, message?: string): Promise<void> {
  await assert.rejects(promise, (error) => {
    assert.ok(error instanceof GrantError, String(error));
    assert.equal(error.reason, reason, error.message);
    if (message !== undefined) assert.equal(error.message, message);
    return true;
  });
}

describe("createGrantVerifier", () => {
  it("verifies what the signer signed", async () => {
    const { verifier, signer } = setup();
    assert.deepEqual(await verifier.verify(signer.sign(claims()), expect), claims());
  });

  it("returns frozen claims, so one caller cannot change what the cache hands the next", async () => {
    const { verifier, signer } = setup();
    const token = signer.sign(claims());
    const first = await verifier.verify(token, expect);
    assert.throws(() => {
      first.sub = "someone-else";
    }, TypeError);
    assert.throws(() => first.amr.push("pwd"), TypeError);
    assert.deepEqual(await verifier.verify(token, expect), claims());
  });

  it("drops claims it does not know", async () => {
    const { verifier, k1 } = setup();
    const token = forge(
      { alg: "EdDSA", typ: "stepgate-grant+jwt", kid: "k1" },
      { ...claims(), extra: 1 },
      k1.privateKey,
    );
    assert.deepEqual(await verifier.verify(token, expect), claims());
  });

  describe("signature and header", () => {
    const header = { alg: "EdDSA", typ: "stepgate-grant+jwt", kid: "k1" };

    it("refuses a tampered payload", async () => {
      const { verifier, signer } = setup();
      const [h, , s] = signer.sign(claims()).split(".");
      await rejects(
        verifier.verify(`${h}.${encode(claims({ sub: "admin" }))}.${s}`, expect),
        "GRANT_INVALID",
      );
    });

    it("refuses a tampered signature", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims());
      const at = token.length - 10;
      const flipped = `${token.slice(0, at)}${token[at] === "A" ? "B" : "A"}${token.slice(at + 1)}`;
      await rejects(verifier.verify(flipped, expect), "GRANT_INVALID", "bad signature");
    });

    it("refuses a signature signed by another key under the same kid", async () => {
      const { verifier } = setup();
      const impostor = createGrantSigner(keyPair("k1"));
      await rejects(verifier.verify(impostor.sign(claims()), expect), "GRANT_INVALID", "bad signature");
    });

    it("refuses a second spelling of the same signature", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims());
      // The last character carries four padding bits: A..P decode to the same 64 bytes.
      const last = token.at(-1) ?? "";
      const sibling = String.fromCharCode(last.charCodeAt(0) + 1);
      await rejects(verifier.verify(token.slice(0, -1) + sibling, expect), "GRANT_INVALID");
    });

    it("refuses characters outside base64url, which Node's decoder would skip or fold", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims());
      const at = token.indexOf("A", token.indexOf(".") + 1);
      for (const odd of ["\u0141", "=", "+", " "]) {
        const spliced = `${token.slice(0, at)}${odd}${token.slice(at + 1)}`;
        await rejects(verifier.verify(spliced, expect), "GRANT_INVALID", "malformed token");
      }
      await rejects(verifier.verify(`${token}=`, expect), "GRANT_INVALID", "malformed token");
    });

    it('refuses alg "none" and "HS256"', async () => {
      const { verifier, k1 } = setup();
      const none = `${encode({ ...header, alg: "none" })}.${encode(claims())}.`;
      await rejects(verifier.verify(none, expect), "GRANT_INVALID");
      for (const alg of ["none", "HS256", "ES256", undefined]) {
        const token = forge({ ...header, alg }, claims(), k1.privateKey);
        await rejects(verifier.verify(token, expect), "GRANT_INVALID", "unsupported algorithm");
      }
    });

    it("refuses another typ", async () => {
      const { verifier, k1 } = setup();
      for (const typ of ["JWT", "at+jwt", undefined]) {
        await rejects(
          verifier.verify(forge({ ...header, typ }, claims(), k1.privateKey), expect),
          "GRANT_INVALID",
        );
      }
    });

    it("refuses critical header extensions", async () => {
      const { verifier, k1 } = setup();
      const token = forge({ ...header, crit: ["exp"], exp: 1 }, claims(), k1.privateKey);
      await rejects(verifier.verify(token, expect), "GRANT_INVALID");
    });

    it("refuses a header without kid", async () => {
      const { verifier, k1 } = setup();
      await rejects(
        verifier.verify(forge({ alg: "EdDSA", typ: header.typ }, claims(), k1.privateKey), expect),
        "GRANT_INVALID",
      );
    });
  });

  describe("malformed tokens", () => {
    it("refuses an oversized token before any work", async () => {
      const { verifier, signer, state } = setup();
      const token = signer.sign(claims({ jti: "x".repeat(4096) }));
      await rejects(verifier.verify(token, expect), "GRANT_INVALID", "token too large");
      assert.equal(state.fetches, 0);
    });

    it("refuses tokens that are not three base64url segments", async () => {
      const { verifier, signer } = setup();
      const [h, p, s] = signer.sign(claims()).split(".");
      for (const token of [
        "",
        ".",
        "..",
        `${h}.${p}`,
        `${h}.${p}.${s}.${s}`,
        `${h}..${s}`,
        `.${p}.${s}`,
        `${h}.${p}.`,
      ]) {
        await rejects(verifier.verify(token, expect), "GRANT_INVALID");
      }
      await rejects(verifier.verify(undefined as unknown as string, expect), "GRANT_INVALID");
    });

    it("refuses a header that is not JSON", async () => {
      const { verifier, signer } = setup();
      const [, p, s] = signer.sign(claims()).split(".");
      await rejects(verifier.verify(`${encode("{not json")}.${p}.${s}`, expect), "GRANT_INVALID");
      await rejects(verifier.verify(`${encode("null")}.${p}.${s}`, expect), "GRANT_INVALID");
    });

    it("refuses a signed payload that is not JSON", async () => {
      const { verifier, k1 } = setup();
      const token = forge({ alg: "EdDSA", typ: "stepgate-grant+jwt", kid: "k1" }, "{not json", k1.privateKey);
      await rejects(verifier.verify(token, expect), "GRANT_INVALID", "malformed token");
    });

    it("refuses signed claims of the wrong types", async () => {
      const { verifier, k1 } = setup();
      const header = { alg: "EdDSA", typ: "stepgate-grant+jwt", kid: "k1" };
      const { jti: _, ...withoutJti } = claims();
      for (const payload of [
        null,
        [],
        42,
        withoutJti,
        { ...claims(), exp: String(t0 + 300) },
        { ...claims(), iat: null },
        { ...claims(), auth_time: "yesterday" },
        { ...claims(), aud: ["payments"] },
        { ...claims(), sub: 1 },
        { ...claims(), amr: "otp" },
        { ...claims(), amr: ["otp", 1] },
        { ...claims(), single_use: "true" },
        { ...claims(), single_use: false },
        { ...claims(), single_use: 1 },
        { ...claims(), fid: 7 },
        { ...claims(), fid: null },
      ]) {
        await rejects(
          verifier.verify(forge(header, payload, k1.privateKey), expect),
          "GRANT_INVALID",
          "malformed claims",
        );
      }
    });
  });

  describe("keys", () => {
    it("fetches the key set on first use, then not again for a known kid", async () => {
      const { verifier, signer, state } = setup();
      await verifier.verify(signer.sign(claims({ jti: "a" })), expect);
      await verifier.verify(signer.sign(claims({ jti: "b" })), expect);
      assert.equal(state.fetches, 1);
    });

    it("refetches once for an unknown kid and succeeds when the key has appeared", async () => {
      const { verifier, signer, state } = setup();
      await verifier.verify(signer.sign(claims()), expect);
      const k2 = keyPair("k2");
      state.published = [state.published[0] as Jwk, k2.jwk];
      state.nowMs += 30_000;
      const token = createGrantSigner(k2).sign(claims());
      assert.deepEqual(await verifier.verify(token, expect), claims());
      assert.equal(state.fetches, 2);
      await verifier.verify(token, expect);
      assert.equal(state.fetches, 2);
    });

    it("refetches at most once per minRefetchIntervalMs while the kid stays unknown", async () => {
      const { verifier, signer, state } = setup({ minRefetchIntervalMs: 10_000 });
      await verifier.verify(signer.sign(claims()), expect);
      state.nowMs += 10_000;
      const stranger = createGrantSigner(keyPair("k9")).sign(claims());
      for (let i = 0; i < 5; i++) {
        await rejects(verifier.verify(stranger, expect), "GRANT_INVALID", "unknown signing key");
        state.nowMs += 1_000;
      }
      assert.equal(state.fetches, 2);
      state.nowMs += 5_000;
      await rejects(verifier.verify(stranger, expect), "GRANT_INVALID", "unknown signing key");
      assert.equal(state.fetches, 3);
    });

    it("refetches a stale key set in the background, so a withdrawn key stops being trusted", async () => {
      const { verifier, signer, state } = setup({ maxKeySetAgeMs: 60_000 });
      const token = signer.sign(claims({ exp: t0 + 3600 }));
      await verifier.verify(token, expect);
      // The issuer withdraws k1; within the age limit the cached key still verifies.
      const k2 = keyPair("k2");
      state.published = [k2.jwk];
      state.nowMs += 30_000;
      await verifier.verify(token, expect);
      assert.equal(state.fetches, 1);
      // Past the limit, the next verification starts a refetch beside it.
      state.nowMs += 31_000;
      await verifier.verify(token, expect);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(state.fetches, 2);
      await rejects(verifier.verify(token, expect), "GRANT_INVALID", "unknown signing key");
    });

    it("shares one fetch between concurrent misses", async () => {
      const { verifier, signer, state } = setup();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => verifier.verify(signer.sign(claims({ jti: `g${i}` })), expect)),
      );
      assert.equal(results.length, 10);
      assert.equal(state.fetches, 1);
    });

    it("forgets tokens of a key that left the key set", async () => {
      const { verifier, signer, state } = setup();
      const token = signer.sign(claims());
      await verifier.verify(token, expect);
      const k2 = keyPair("k2");
      state.published = [k2.jwk];
      state.nowMs += 30_000;
      await verifier.verify(createGrantSigner(k2).sign(claims()), expect);
      await rejects(verifier.verify(token, expect), "GRANT_INVALID", "unknown signing key");
    });

    it("keeps the keys it has when a fetch returns no usable key", async () => {
      const { verifier, signer, state } = setup();
      await verifier.verify(signer.sign(claims({ jti: "a" })), expect);
      state.published = [];
      state.nowMs += 30_000;
      const stranger = createGrantSigner(keyPair("k9")).sign(claims());
      await assert.rejects(verifier.verify(stranger, expect), { message: "jwks unavailable" });
      await verifier.verify(signer.sign(claims({ jti: "b" })), expect);
    });

    it("says jwks unavailable, not a bad grant, when the key set cannot be fetched", async () => {
      let fetches = 0;
      let up = false;
      let nowMs = t0 * 1000;
      const k1 = keyPair("k1");
      const verifier = createGrantVerifier({
        keys: async () => {
          fetches++;
          if (!up) throw new Error("connect ECONNREFUSED");
          return [k1.jwk];
        },
        now: () => nowMs,
      });
      const token = createGrantSigner(k1).sign(claims());
      const unavailable = (error: unknown) => {
        assert.ok(error instanceof Error && !(error instanceof GrantError));
        assert.equal(error.message, "jwks unavailable");
        assert.match(String((error.cause as Error).message), /ECONNREFUSED/);
        return true;
      };
      await assert.rejects(verifier.verify(token, expect), unavailable);
      await assert.rejects(verifier.verify(token, expect), unavailable);
      assert.equal(fetches, 1, "a failed fetch is not retried at once");
      up = true;
      nowMs += 1_000;
      assert.deepEqual(await verifier.verify(token, expect), claims());
      assert.equal(fetches, 2, "nor made to wait a whole refetch interval");
    });

    it("verifySync needs the key cached and never fetches", async () => {
      const { verifier, signer, state } = setup();
      const token = signer.sign(claims());
      assert.throws(() => verifier.verifySync(token, expect), {
        reason: "GRANT_INVALID",
        message: "unknown signing key",
      });
      assert.equal(state.fetches, 0);
      await verifier.verify(signer.sign(claims({ jti: "other" })), expect);
      assert.deepEqual(verifier.verifySync(token, expect), claims());
    });
  });

  describe("claims", () => {
    it("refuses another issuer when one is configured", async () => {
      const { verifier, signer } = setup();
      await rejects(
        verifier.verify(signer.sign(claims({ iss: "https://elsewhere" })), expect),
        "GRANT_INVALID",
      );
      const { verifier: open, signer: openSigner } = setup({ issuer: undefined as unknown as string });
      await open.verify(openSigner.sign(claims({ iss: "https://elsewhere" })), expect);
    });

    it("refuses an expired grant, with the clock tolerance", async () => {
      const { verifier, signer, state } = setup();
      state.nowMs = (t0 + 300 + 4) * 1000;
      await verifier.verify(signer.sign(claims({ jti: "a" })), expect);
      state.nowMs = (t0 + 300 + 5) * 1000;
      await rejects(verifier.verify(signer.sign(claims({ jti: "b" })), expect), "GRANT_EXPIRED");
    });

    it("honours clockToleranceSeconds", async () => {
      const { verifier, signer, state } = setup({ clockToleranceSeconds: 0 });
      state.nowMs = (t0 + 300) * 1000;
      await rejects(verifier.verify(signer.sign(claims()), expect), "GRANT_EXPIRED");
    });

    it("refuses a grant issued or authenticated in the future", async () => {
      const { verifier, signer } = setup();
      await verifier.verify(signer.sign(claims({ iat: t0 + 5 })), expect);
      await rejects(verifier.verify(signer.sign(claims({ iat: t0 + 6 })), expect), "GRANT_INVALID");
      await rejects(verifier.verify(signer.sign(claims({ auth_time: t0 + 60 })), expect), "GRANT_INVALID");
    });

    it("refuses another audience, action, subject or session", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims());
      const full = { ...expect, subject: "user-1", sessionId: "session-1" };
      await verifier.verify(token, full);
      for (const [wrong, message] of [
        [{ audience: "mail" }, "audience mismatch"],
        [{ action: "payout.read" }, "action mismatch"],
        [{ subject: "user-2" }, "subject mismatch"],
        [{ sessionId: "session-2" }, "session mismatch"],
      ] as const) {
        await rejects(verifier.verify(token, { ...full, ...wrong }), "GRANT_MISMATCH", message);
      }
    });

    it("refuses an authentication older than maxAgeSeconds", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims({ auth_time: t0 - 60 }));
      await verifier.verify(token, { ...expect, maxAgeSeconds: 60 });
      await verifier.verify(token, { ...expect, maxAgeSeconds: 55 });
      await rejects(
        verifier.verify(token, { ...expect, maxAgeSeconds: 54 }),
        "GRANT_MISMATCH",
        "authentication too old",
      );
    });

    it("refuses a single-use grant unless allowSingleUse", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims({ single_use: true }));
      await rejects(verifier.verify(token, expect), "GRANT_SINGLE_USE");
      await rejects(verifier.verify(token, { ...expect, allowSingleUse: false }), "GRANT_SINGLE_USE");
      assert.equal((await verifier.verify(token, { ...expect, allowSingleUse: true })).single_use, true);
      await rejects(verifier.verify(token, { ...expect, audience: "mail" }), "GRANT_MISMATCH");
    });

    it("returns the factor the grant came from (fid) when it names one", async () => {
      const { verifier, signer } = setup();
      const withFactor = signer.sign(claims({ jti: "with-factor", fid: "factor-1" }));
      assert.equal((await verifier.verify(withFactor, expect)).fid, "factor-1");
      assert.equal((await verifier.verify(signer.sign(claims({ jti: "no-factor" })), expect)).fid, undefined);
    });
  });

  describe("verified-token cache", () => {
    it("still refuses a cached token after its exp", async () => {
      const { verifier, signer, state } = setup();
      const token = signer.sign(claims());
      await verifier.verify(token, expect);
      state.nowMs = (t0 + 305) * 1000;
      await rejects(verifier.verify(token, expect), "GRANT_EXPIRED");
      assert.throws(() => verifier.verifySync(token, expect), { reason: "GRANT_EXPIRED" });
    });

    it("still checks the expectations of every call", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims({ single_use: true }));
      await verifier.verify(token, { ...expect, allowSingleUse: true });
      await rejects(
        verifier.verify(token, { ...expect, audience: "mail", allowSingleUse: true }),
        "GRANT_MISMATCH",
      );
      await rejects(verifier.verify(token, expect), "GRANT_SINGLE_USE");
      await rejects(
        verifier.verify(token, { ...expect, maxAgeSeconds: 10, allowSingleUse: true }),
        "GRANT_MISMATCH",
      );
    });

    it("verifies the signature of a cached token's siblings", async () => {
      const { verifier, signer } = setup();
      const token = signer.sign(claims());
      await verifier.verify(token, expect);
      const at = token.length - 10;
      const flipped = `${token.slice(0, at)}${token[at] === "A" ? "B" : "A"}${token.slice(at + 1)}`;
      await rejects(verifier.verify(flipped, expect), "GRANT_INVALID", "bad signature");
    });
  });

  it("never puts the token or a part of it in an error", async () => {
    const { verifier, k1, signer, state } = setup();
    const header = { alg: "EdDSA", typ: "stepgate-grant+jwt", kid: "k1-secretive-kid" };
    const valid = signer.sign(claims({ sub: "user-secretive", aud: "aud-secretive" }));
    const [h, p, s] = valid.split(".");
    const tokens = [
      valid,
      `${h}.${p}`,
      `${h}.${encode("{secretive json")}.${s}`,
      `${encode('{"alg":"secretive"')}.${p}.${s}`,
      forge(header, "{secretive json", k1.privateKey),
      forge({ ...header, kid: "k1" }, "{secretive json", k1.privateKey),
      forge({ ...header, kid: "k1" }, { ...claims(), exp: "secretive" }, k1.privateKey),
      forge({ ...header, alg: "secretive" }, claims(), k1.privateKey),
      `${valid}x`,
      "secretive".repeat(500),
    ];
    state.nowMs = (t0 + 1000) * 1000;
    for (const token of tokens) {
      for (const call of [
        () => verifier.verify(token, expect),
        async () => verifier.verifySync(token, expect),
      ]) {
        await assert.rejects(call(), (error) => {
          assert.ok(error instanceof Error);
          const seen = `${error.message} ${String(error.cause ?? "")} ${error.stack ?? ""}`;
          assert.doesNotMatch(seen, /secretive/);
          for (const part of token.split(".")) {
            if (part.length > 0) assert.ok(!seen.includes(part), error.message);
          }
          assert.match(error.message, /^[a-z -]+$/);
          return true;
        });
      }
    }
  });
});
