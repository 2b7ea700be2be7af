// Subject proof through the real service: a caller proves the user is present with the user's
// primary-session token (a JWT from a trusted identity provider, checked against its published
// keys); a first factor binds only to a recent sign-in; a caller the policy marks `required` must
// always send one. The identity provider is a real HTTP server on loopback.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { subjectTokenHeader } from "@stepgate/api";
import { startTestIdentityProvider, type TestIdentityProvider } from "@stepgate/testkit";
import fc from "fast-check";
import { expectFailure } from "./support/errors.ts";
import { newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate, subjectProofBlock, testPolicy } from "./support/stepgate.ts";

const firstFactorMaxAge = 120;
const withToken = (token: string) => ({ headers: { [subjectTokenHeader]: token } });

describe("subject proof", () => {
  let idp: TestIdentityProvider;
  let h: Harness;
  before(async () => {
    idp = await startTestIdentityProvider();
    h = await startStepgate({
      policy: `${testPolicy}
callers:
  payments: { actions: ["*"], factors: manage }
  strict: { actions: ["*"], factors: manage, subject_proof: required }
${subjectProofBlock(idp, firstFactorMaxAge)}`,
      // A rotated provider key is fetched at once in the test, not after the default 30 s.
      env: { STEPGATE_SUBJECT_JWKS_COOLDOWN_MS: "0", STEPGATE_SUBJECT_JWKS_TIMEOUT_MS: "500" },
    });
  });
  after(async () => {
    await h?.close();
    await idp?.close();
  });

  const nowSeconds = () => Math.floor(h.clock.now() / 1000);
  const signedIn = (sub: string, extra: { sid?: string; auth_time?: number } = {}) =>
    idp.token({ sub, auth_time: nowSeconds() - 10, ...extra });
  const enrol = (subject: string, options?: { headers: Record<string, string> }) =>
    h.client.factors.enrollTotp({ subject, label: "Phone", accountName: "a@example.com" }, options);
  const noFactors = async (subject: string) =>
    assert.deepEqual((await h.client.factors.listFactors({ subject })).factors, []);

  it("refuses a first factor without a token, or with a sign-in older than the policy allows", async () => {
    const subject = newSubject();
    await expectFailure(enrol(subject), Code.Unauthenticated, "SUBJECT_PROOF_REQUIRED");
    await expectFailure(
      h.client.factors.createRecoveryCodes({ subject }),
      Code.Unauthenticated,
      "SUBJECT_PROOF_REQUIRED",
    );
    const stale = await idp.token({ sub: subject, auth_time: nowSeconds() - firstFactorMaxAge - 60 });
    await expectFailure(enrol(subject, withToken(stale)), Code.Unauthenticated, "SUBJECT_PROOF_STALE");
    const noAuthTime = await idp.token({ sub: subject });
    await expectFailure(enrol(subject, withToken(noAuthTime)), Code.Unauthenticated, "SUBJECT_PROOF_STALE");
    await noFactors(subject);
  });

  it("fails closed on sign-in times in milliseconds, in the future, or after the token was issued", async () => {
    const subject = newSubject();
    const now = nowSeconds();
    const refused = [
      { auth_time: (now - 2 * 86_400) * 1000 },
      { auth_time: now + 3600 },
      { auth_time: now - 10, iat: now + 3600 },
      { auth_time: now - 10, iat: now - 60 },
      { auth_time: String(now - 10) },
      { auth_time: -1 },
      { auth_time: now - 10, exp: (now + 300) * 1000 },
    ];
    for (const claims of refused) {
      const token = await idp.token({ sub: subject, ...claims });
      await expectFailure(enrol(subject, withToken(token)), Code.Unauthenticated, "SUBJECT_PROOF_INVALID");
    }
    await noFactors(subject);
  });

  it("never reads a subject token's times as fresher than they are", async () => {
    const now = nowSeconds();
    const time = fc.oneof(
      fc.integer({ min: now - 2 * firstFactorMaxAge, max: now + 60 }),
      fc.integer({ min: (now - 86_400) * 1000, max: (now + 60) * 1000 }),
      fc.constantFrom(0, -1, -now, 2 ** 53, 1e300, 253_402_300_800, null, "0", true),
      fc.constant(undefined),
    );
    await fc.assert(
      fc.asyncProperty(time, time, fc.option(time, { nil: undefined }), async (authTime, iat, exp) => {
        const subject = newSubject();
        const token = await idp.token({
          sub: subject,
          ...(authTime === undefined ? {} : { auth_time: authTime }),
          ...(iat === undefined ? {} : { iat }),
          ...(exp === undefined ? {} : { exp }),
        });
        const accepted = await enrol(subject, withToken(token)).then(
          () => true,
          () => false,
        );
        if (!accepted) return;
        // Accepted: every time was a real time in seconds, and the sign-in recent and not ahead.
        const t = nowSeconds();
        assert.ok(
          typeof authTime === "number" && authTime >= t - firstFactorMaxAge - 10 && authTime <= t + 5,
        );
        assert.ok(iat === undefined || (typeof iat === "number" && iat <= t + 5 && authTime <= iat + 5));
        assert.ok(exp === undefined || (typeof exp === "number" && exp > t - 5 && exp <= 253_402_300_799));
      }),
      { numRuns: 120 },
    );
  });

  it("enrols a first factor and recovery codes for a user who just signed in", async () => {
    const subject = newSubject();
    const token = await signedIn(subject);
    const enrolled = await enrol(subject, withToken(token));
    const confirm = (options?: { headers: Record<string, string> }) =>
      h.client.factors.confirmTotp(
        { subject, factorId: enrolled.factorId, code: h.code(enrolled.secret) },
        options,
      );
    // A first factor's confirmation is authorised again, against a fresh sign-in.
    await expectFailure(confirm(), Code.Unauthenticated, "SUBJECT_PROOF_REQUIRED");
    await confirm(withToken(token));
    const another = newSubject();
    const codes = await h.client.factors.createRecoveryCodes(
      { subject: another },
      withToken(await signedIn(another)),
    );
    assert.equal(codes.codes.length, 10);
    // Once a factor is active a change needs a grant, token or not.
    await expectFailure(enrol(subject, withToken(token)), Code.PermissionDenied, "GRANT_REQUIRED");
  });

  it("refuses tokens that prove nothing, and writes nothing for them", async () => {
    const subject = newSubject();
    const now = nowSeconds();
    const refused = [
      await idp.token({ sub: subject, auth_time: now }, { key: "rogue" }),
      await idp.token({ sub: subject, auth_time: now, exp: now - 3600 }),
      await idp.token({ sub: subject, auth_time: now, aud: "another-app" }),
      await idp.token({ sub: subject, auth_time: now, iss: "https://elsewhere.example" }),
      "not-a-jwt",
      `${"a".repeat(3000)}.${"b".repeat(3000)}.${"c".repeat(3000)}`,
    ];
    for (const token of refused) {
      const f = await expectFailure(
        enrol(subject, withToken(token)),
        Code.Unauthenticated,
        "SUBJECT_PROOF_INVALID",
      );
      assert.ok(!f.message.includes(token.slice(0, 40)), "the token is not echoed");
    }
    const other = await signedIn(newSubject());
    await expectFailure(enrol(subject, withToken(other)), Code.PermissionDenied, "SUBJECT_PROOF_MISMATCH");
    await noFactors(subject);
    const logs = h.logs.join("\n");
    for (const token of [...refused.slice(0, 4), other])
      assert.ok(!logs.includes(token), "no token in the logs");
  });

  it("makes a caller marked `required` prove the subject, and its session, on every call", async () => {
    const strict = h.clientAs("strict");
    const subject = newSubject();
    const sessionId = newSession();
    await expectFailure(
      strict.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" }),
      Code.Unauthenticated,
      "SUBJECT_PROOF_REQUIRED",
    );
    await expectFailure(
      strict.factors.listFactors({ subject }),
      Code.Unauthenticated,
      "SUBJECT_PROOF_REQUIRED",
    );
    await expectFailure(
      strict.stepUp.endSession({ subject, sessionId }),
      Code.Unauthenticated,
      "SUBJECT_PROOF_REQUIRED",
    );
    const token = await signedIn(subject, { sid: sessionId });
    assert.deepEqual((await strict.factors.listFactors({ subject }, withToken(token))).factors, []);
    await strict.stepUp.endSession({ subject, sessionId }, withToken(token));
    await expectFailure(
      strict.stepUp.endSession({ subject, sessionId: newSession() }, withToken(token)),
      Code.PermissionDenied,
      "SUBJECT_PROOF_MISMATCH",
    );
    // A caller not marked `required` may still send one, and it is checked.
    await expectFailure(
      h.client.stepUp.endSession({ subject, sessionId: newSession() }, withToken(token)),
      Code.PermissionDenied,
      "SUBJECT_PROOF_MISMATCH",
    );
  });

  it("refuses fuzzed and forged tokens with SUBJECT_PROOF_INVALID, echoing none of them", async () => {
    const subject = newSubject();
    const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
    const forged = fc
      .record({
        header: fc.json(),
        payload: fc.json(),
        signature: fc.stringMatching(/^[A-Za-z0-9_-]{0,90}$/),
      })
      .map(
        ({ header, payload, signature }) =>
          `${b64(JSON.parse(header))}.${b64(JSON.parse(payload))}.${signature}`,
      );
    const unsigned = fc
      .constantFrom("none", "HS256", "ES256", "RS256")
      .map(
        (alg) =>
          `${b64({ alg, typ: "JWT" })}.${b64({ iss: idp.issuer, aud: idp.audience, sub: subject, auth_time: nowSeconds(), exp: nowSeconds() + 60 })}.`,
      );
    const printable = fc.stringMatching(/^[\x21-\x7e]{1,200}$/);
    await fc.assert(
      fc.asyncProperty(fc.oneof(forged, unsigned, printable), async (token) => {
        const f = await expectFailure(
          enrol(subject, withToken(token)),
          Code.Unauthenticated,
          "SUBJECT_PROOF_INVALID",
        );
        assert.ok(token.length < 12 || !f.message.includes(token), "the token is not echoed");
      }),
      { numRuns: 80 },
    );
    await noFactors(subject);
  });

  it("follows the provider's key rotation, and answers UNAVAILABLE while its keys cannot be fetched", async () => {
    await idp.rotate();
    const subject = newSubject();
    await enrol(subject, withToken(await signedIn(subject)));
    await idp.rotate();
    idp.failJwks(true);
    try {
      const f = await expectFailure(
        enrol(subject, withToken(await signedIn(subject))),
        Code.Unavailable,
        "DEPENDENCY_UNAVAILABLE",
      );
      assert.equal(f.metadata.dependency, "identity-provider");
    } finally {
      idp.failJwks(false);
    }
    await enrol(subject, withToken(await signedIn(subject)));
  });
});
