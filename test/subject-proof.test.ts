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
import { type Harness, startStepgate, testPolicy } from "./support/stepgate.ts";

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
subject_proof:
  issuers: [{ issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audiences: [${idp.audience}] }]
  first_factor_max_age: ${firstFactorMaxAge}
`,
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

  it("enrols a first factor and recovery codes for a user who just signed in", async () => {
    const subject = newSubject();
    const token = await signedIn(subject);
    const enrolled = await enrol(subject, withToken(token));
    await h.client.factors.confirmTotp({
      subject,
      factorId: enrolled.factorId,
      code: h.code(enrolled.secret),
    });
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
