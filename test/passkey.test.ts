// Passkeys through a real replica, PostgreSQL and Redis: enrolment under the same authorisation as
// TOTP, step-up with WebAuthn request options bound to the challenge, the acr and amr a passkey
// earns, every bad answer refused with its reason and nothing written, a cloned authenticator
// caught and flagged, and removal ending the passkey's elevations.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { FactorStatus, Method } from "@stepgate/api";
import { createSoftwareAuthenticator } from "@stepgate/testkit/software-authenticator";
import { failure } from "./support/errors.ts";
import { enrolTotp, grantFor, newKey, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import {
  beginPasskey,
  enrolPasskey,
  localParty,
  passkeyChallenge,
  passkeyPolicy,
  paymentsParty,
  verifyPasskey,
} from "./support/passkeys.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

describe("passkeys", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate({ policy: passkeyPolicy });
  });
  after(async () => h.close());

  /** Audit events and rows that name the subject: what a refused call must leave unchanged. */
  const written = async (subject: string) => {
    await h.flushAudit();
    const [row] = await h.db.query<{ events: string; counters: string }>(
      `select (select count(*) from audit_events where subject = $1) as events,
              (select coalesce(sum(p.sign_count), 0) from passkey_credentials p join factors f on f.id = p.factor_id
               where f.subject = $1) as counters`,
      [subject],
    );
    return row;
  };

  for (const algorithm of ["ES256", "EdDSA"] as const) {
    for (const attestation of ["none", "packed"] as const) {
      it(`enrols a ${algorithm} passkey (${attestation} attestation) and steps up with it; the grant checks offline`, async () => {
        const subject = newSubject();
        const sessionId = newSession();
        const { authenticator, factorId } = await enrolPasskey(h.client, subject, paymentsParty, {
          algorithm,
          attestation,
        });
        const [factor] = (await h.client.factors.listFactors({ subject })).factors;
        assert.equal(factor?.method, Method.PASSKEY);
        assert.equal(factor?.status, FactorStatus.ACTIVE);
        const action = "payments.transfer";
        const { challenge, options, ceremony } = await passkeyChallenge(
          h.client,
          subject,
          sessionId,
          action,
          paymentsParty,
        );
        assert.deepEqual(challenge.methods, [Method.PASSKEY]);
        assert.equal(options.userVerification, "required");
        assert.deepEqual(
          options.allowCredentials.map((c) => c.id),
          [authenticator.credentialId],
        );
        const request = { challengeId: challenge.challengeId, subject, sessionId, action };
        const verified = await verifyPasskey(
          h.client,
          request,
          JSON.stringify(authenticator.assert(ceremony)),
        );
        assert.equal(verified.method, Method.PASSKEY);
        assert.equal(verified.grant?.acr, "aal3");
        assert.deepEqual(verified.grant?.amr, ["hwk", "user", "mfa"]);
        const claims = await h.client.verifyGrant(verified.grant?.token ?? "", {
          action,
          subject,
          sessionId,
        });
        assert.equal(claims.fid, factorId);
        // The elevation is the session's: the next StepUp within max_age is a grant.
        await grantFor(h.client, subject, sessionId, action);
      });
    }
  }

  it("uses each caller's relying party: a passkey of one RP is not offered to another caller", async () => {
    const subject = newSubject();
    const accounts = h.clientAs("accounts");
    const { authenticator } = await enrolPasskey(accounts, subject, localParty);
    const res = await h.client.stepUp.stepUp({
      subject,
      sessionId: newSession(),
      action: "payments.transfer",
    });
    assert.equal(res.outcome.case, "enrollmentRequired");
    const sessionId = newSession();
    const { ceremony, request } = await passkeyChallenge(
      accounts,
      subject,
      sessionId,
      "payments.transfer",
      localParty,
    );
    const verified = await verifyPasskey(accounts, request, JSON.stringify(authenticator.assert(ceremony)));
    assert.equal(verified.grant?.acr, "aal3");
  });

  it("maps UV and backup eligibility to acr and amr, and honours each action's demands", async () => {
    const subject = newSubject();
    const synced = await enrolPasskey(h.client, subject, paymentsParty, {
      backupEligible: true,
      userVerified: true,
    });
    // A synced passkey reaches aal2 only: the aal3 action is not offered it, nor the device-bound one.
    const high = await h.client.stepUp.stepUp({
      subject,
      sessionId: newSession(),
      action: "payments.high_value",
    });
    assert.equal(high.outcome.case, "enrollmentRequired");
    const bound = await h.client.stepUp.stepUp({ subject, sessionId: newSession(), action: "account.view" });
    assert.equal(bound.outcome.case, "enrollmentRequired");
    const sessionId = newSession();
    const action = "payments.transfer";
    const { ceremony, request } = await passkeyChallenge(h.client, subject, sessionId, action, paymentsParty);
    const verified = await verifyPasskey(
      h.client,
      request,
      JSON.stringify(synced.authenticator.assert(ceremony)),
    );
    assert.equal(verified.grant?.acr, "aal2");
    assert.deepEqual(verified.grant?.amr, ["swk", "user", "mfa"]);
    // That elevation is not reused for the action that needs a device-bound key either.
    const view = await h.client.stepUp.stepUp({ subject, sessionId, action: "account.view" });
    assert.equal(view.outcome.case, "enrollmentRequired");
  });

  it("refuses a passkey without user verification where the action requires it, writing nothing", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty, { userVerified: false });
    const action = "payments.transfer";
    const { challenge, ceremony } = await passkeyChallenge(
      h.client,
      subject,
      sessionId,
      action,
      paymentsParty,
    );
    const before = await written(subject);
    const request = { challengeId: challenge.challengeId, subject, sessionId, action };
    const refused = await failure(
      verifyPasskey(h.client, request, JSON.stringify(authenticator.assert(ceremony))),
    );
    assert.equal(refused.code, Code.PermissionDenied);
    assert.equal(refused.reason, "PASSKEY_REFUSED");
    assert.equal(refused.metadata.refusal, "user_verification_missing");
    assert.deepEqual(await written(subject), before);
    // Without UV it still answers where UV is only preferred, at aal2 (a device-bound key alone).
    const viewSession = newSession();
    const view = await passkeyChallenge(h.client, subject, viewSession, "account.view", paymentsParty);
    const ok = await verifyPasskey(
      h.client,
      { challengeId: view.challenge.challengeId, subject, sessionId: viewSession, action: "account.view" },
      JSON.stringify(authenticator.assert(view.ceremony)),
    );
    assert.equal(ok.grant?.acr, "aal2");
    assert.deepEqual(ok.grant?.amr, ["hwk", "user"]);
  });

  it("refuses bad answers with a clear status before any attempt is spent, and writes nothing", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    const stranger = createSoftwareAuthenticator();
    const { ceremony, request } = await passkeyChallenge(h.client, subject, sessionId, action, paymentsParty);
    // Another session's challenge for the same subject, action and caller.
    const other = await passkeyChallenge(h.client, subject, newSession(), action, paymentsParty);
    const valid = authenticator.assert(ceremony);
    const hugeClientData = Buffer.from(
      JSON.stringify({
        type: "webauthn.get",
        challenge: ceremony.challenge,
        origin: ceremony.origin,
        pad: "x".repeat(3000),
      }),
    ).toString("base64url");
    const cases: [string, string, Code, string, string?][] = [
      ["not JSON", "{not json", Code.InvalidArgument, "PASSKEY_MALFORMED"],
      ["JSON of another shape", JSON.stringify({ id: 5 }), Code.InvalidArgument, "PASSKEY_MALFORMED"],
      ["an array", "[]", Code.InvalidArgument, "PASSKEY_MALFORMED"],
      [
        "an oversized clientDataJSON",
        JSON.stringify({ ...valid, response: { ...valid.response, clientDataJSON: hugeClientData } }),
        Code.InvalidArgument,
        "PASSKEY_MALFORMED",
      ],
      [
        "a wrong origin",
        JSON.stringify(authenticator.assert({ ...ceremony, origin: "https://payments.example.com.evil" })),
        Code.PermissionDenied,
        "PASSKEY_REFUSED",
        "wrong_origin",
      ],
      [
        "a wrong RP id",
        JSON.stringify(authenticator.assert({ ...ceremony, rpId: "evil.example.com" })),
        Code.PermissionDenied,
        "PASSKEY_REFUSED",
        "wrong_rp",
      ],
      [
        "another session's challenge",
        JSON.stringify(authenticator.assert(other.ceremony)),
        Code.PermissionDenied,
        "PASSKEY_REFUSED",
        "wrong_challenge",
      ],
      [
        "an unknown credential",
        JSON.stringify(stranger.assert(ceremony)),
        Code.PermissionDenied,
        "PASSKEY_REFUSED",
        "unknown_credential",
      ],
    ];
    const before = await written(subject);
    for (const [name, json, code, reason, refusal] of cases) {
      const refused = await failure(verifyPasskey(h.client, request, json));
      assert.equal(refused.code, code, name);
      assert.equal(refused.reason, reason, name);
      if (refusal) assert.equal(refused.metadata.refusal, refusal, name);
    }
    // More refusals than the challenge has attempts, yet nothing was counted or written.
    assert.deepEqual(await written(subject), before);
    const verified = await verifyPasskey(h.client, request, JSON.stringify(valid));
    assert.equal(verified.method, Method.PASSKEY);
  });

  it("answers a retry with the same key as the first time, and refuses a replayed assertion", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    const { ceremony, request } = await passkeyChallenge(h.client, subject, sessionId, action, paymentsParty);
    const assertion = JSON.stringify(authenticator.assert(ceremony));
    const key = newKey();
    const first = await verifyPasskey(h.client, request, assertion, key);
    const retried = await verifyPasskey(h.client, request, assertion, key);
    assert.equal(retried.grant?.grantId, first.grant?.grantId);
    const replayed = await failure(verifyPasskey(h.client, request, assertion));
    assert.equal(replayed.reason, "CHALLENGE_USED");
    // The same assertion against a new challenge was signed for another one.
    const next = await passkeyChallenge(
      h.client,
      subject,
      newSession(),
      "payments.high_value",
      paymentsParty,
    );
    const elsewhere = await failure(verifyPasskey(h.client, next.request, assertion));
    assert.equal(elsewhere.reason, "PASSKEY_REFUSED");
    assert.equal(elsewhere.metadata.refusal, "wrong_challenge");
  });

  it("counts a bad signature as a wrong answer, with the attempts left", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    const { ceremony, request } = await passkeyChallenge(h.client, subject, sessionId, action, paymentsParty);
    const assertion = authenticator.assert(ceremony);
    const signature = Buffer.from(assertion.response.signature, "base64url");
    signature[signature.length - 1] = (signature.at(-1) ?? 0) ^ 1;
    const forged = {
      ...assertion,
      response: { ...assertion.response, signature: signature.toString("base64url") },
    };
    const refused = await failure(verifyPasskey(h.client, request, JSON.stringify(forged)));
    assert.equal(refused.reason, "PASSKEY_REFUSED");
    assert.equal(refused.metadata.refusal, "bad_signature");
    assert.equal(refused.metadata.attempts_remaining, "4");
  });

  it("locks the subject after max_failures bad signatures, as for TOTP, and audits each failure", async () => {
    const subject = newSubject();
    const action = "payments.transfer";
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    /** One forged answer to a new challenge: the signature's last byte flipped. */
    const forgedAnswer = async (sessionId: string) => {
      const { ceremony, request } = await passkeyChallenge(
        h.client,
        subject,
        sessionId,
        action,
        paymentsParty,
      );
      const assertion = authenticator.assert(ceremony);
      const signature = Buffer.from(assertion.response.signature, "base64url");
      signature[signature.length - 1] = (signature.at(-1) ?? 0) ^ 1;
      const response = { ...assertion.response, signature: signature.toString("base64url") };
      return failure(verifyPasskey(h.client, request, JSON.stringify({ ...assertion, response })));
    };
    // The test policy locks after 8 failures in a row; each challenge takes 5.
    for (let i = 0; i < 7; i++)
      assert.equal((await forgedAnswer(newSession())).metadata.refusal, "bad_signature");
    const eighth = await forgedAnswer(newSession());
    assert.equal(eighth.metadata.refusal, "bad_signature");
    const locked = await failure(
      passkeyChallenge(h.client, subject, newSession(), action, paymentsParty).then(({ ceremony, request }) =>
        verifyPasskey(h.client, request, JSON.stringify(authenticator.assert(ceremony))),
      ),
    );
    assert.equal(locked.reason, "SUBJECT_LOCKED");
    await h.flushAudit();
    const events = await h.db.query<{ type: string; n: string }>(
      `select type, count(*) as n from audit_events where subject = $1
       and type in ('verify.failed', 'lockout.started') group by type order by type`,
      [subject],
    );
    assert.deepEqual(
      events.map((e) => [e.type, Number(e.n)]),
      [
        ["lockout.started", 1],
        ["verify.failed", 8],
      ],
    );
  });

  it("catches a cloned authenticator by its counter: refuses, flags the passkey and audits it", async () => {
    const subject = newSubject();
    const action = "payments.transfer";
    const { authenticator, factorId } = await enrolPasskey(h.client, subject, paymentsParty);
    const sessionId = newSession();
    const c1 = await passkeyChallenge(h.client, subject, sessionId, action, paymentsParty);
    await verifyPasskey(h.client, c1.request, JSON.stringify(authenticator.assert(c1.ceremony)));
    // The clone signs with the same key but its counter lags behind the original's.
    authenticator.counter = 0;
    const session2 = newSession();
    const c2 = await passkeyChallenge(h.client, subject, session2, action, paymentsParty);
    const refused = await failure(
      verifyPasskey(h.client, c2.request, JSON.stringify(authenticator.assert(c2.ceremony))),
    );
    assert.equal(refused.reason, "PASSKEY_REFUSED");
    assert.equal(refused.metadata.refusal, "counter_regressed");
    const [factor] = (await h.client.factors.listFactors({ subject })).factors;
    assert.equal(factor?.flagged, true);
    await h.flushAudit();
    const audited = await h.db.query<{ details: { factor_id: string } }>(
      "select details from audit_events where subject = $1 and type = 'passkey.counter_regressed'",
      [subject],
    );
    assert.equal(audited[0]?.details.factor_id, factorId);
    // A flagged passkey answers no more challenges.
    const after = await h.client.stepUp.stepUp({ subject, sessionId: newSession(), action });
    assert.equal(after.outcome.case, "enrollmentRequired");
  });

  it("enrols a second factor only with a fresh management grant, and removing a passkey ends its elevations", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { secret } = await enrolTotp(h, subject);
    const refused = await failure(beginPasskey(h.client, subject, paymentsParty));
    assert.equal(refused.reason, "GRANT_REQUIRED");
    // stepgate.enroll_passkey is not in the policy: it requires what stepgate.enroll_totp does.
    const enrolGrant = await stepUpWithTotp(h, subject, sessionId, "stepgate.enroll_passkey", secret);
    const { authenticator, factorId } = await enrolPasskey(h.client, subject, paymentsParty, {
      grant: enrolGrant.grant?.token ?? "",
    });
    // The grant was consumed by the enrolment: it cannot authorise another.
    const again = await failure(beginPasskey(h.client, subject, paymentsParty, enrolGrant.grant?.token));
    assert.equal(again.reason, "GRANT_CONSUMED");
    const action = "payments.transfer";
    const passkeySession = newSession();
    const { challenge, ceremony, request } = await passkeyChallenge(
      h.client,
      subject,
      passkeySession,
      action,
      paymentsParty,
    );
    assert.deepEqual(challenge.methods, [Method.PASSKEY, Method.TOTP]);
    const verified = await verifyPasskey(h.client, request, JSON.stringify(authenticator.assert(ceremony)));
    h.clock.advance(30_000);
    const removeGrant = await stepUpWithTotp(h, subject, newSession(), "stepgate.remove_factor", secret);
    await h.client.factors.removeFactor({ subject, factorId, grant: removeGrant.grant?.token ?? "" });
    const revoked = await failure(h.client.stepUp.checkGrant({ token: verified.grant?.token ?? "", action }));
    assert.equal(revoked.reason, "GRANT_REVOKED");
    const next = await h.client.stepUp.stepUp({ subject, sessionId: passkeySession, action });
    assert.equal(next.outcome.case, "challenge");
    assert.deepEqual(next.outcome.value.methods, [Method.TOTP]);
    assert.equal(next.outcome.value.passkeyRequestOptionsJson, "");
  });

  it("answers a finish sent again with the factor, and refuses another registration for it", async () => {
    const subject = newSubject();
    const authenticator = createSoftwareAuthenticator();
    const { factorId, ceremony } = await beginPasskey(h.client, subject, paymentsParty);
    const attestationJson = JSON.stringify(authenticator.register(ceremony));
    const first = await h.client.factors.finishPasskeyEnrollment({ subject, factorId, attestationJson });
    const again = await h.client.factors.finishPasskeyEnrollment({ subject, factorId, attestationJson });
    assert.equal(again.factor?.factorId, first.factor?.factorId);
    assert.equal(again.factor?.status, FactorStatus.ACTIVE);
    const other = JSON.stringify(createSoftwareAuthenticator().register(ceremony));
    const refused = await failure(
      h.client.factors.finishPasskeyEnrollment({ subject, factorId, attestationJson: other }),
    );
    assert.equal(refused.reason, "FACTOR_STATE");
    assert.equal((await h.client.factors.listFactors({ subject })).factors.length, 1);
  });

  it("refuses a credential id the relying party has already registered, for any subject", async () => {
    const subject = newSubject();
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    const other = newSubject();
    const { factorId, ceremony } = await beginPasskey(h.client, other, paymentsParty);
    const refused = await failure(
      h.client.factors.finishPasskeyEnrollment({
        subject: other,
        factorId,
        attestationJson: JSON.stringify(authenticator.register(ceremony)),
      }),
    );
    assert.equal(refused.reason, "PASSKEY_REFUSED");
    assert.equal(refused.metadata.refusal, "already_registered");
    const [pending] = (await h.client.factors.listFactors({ subject: other })).factors;
    assert.equal(pending?.status, FactorStatus.PENDING);
  });

  it("refuses enrolment answers made for another enrolment, page or RP id, or in an unsupported format", async () => {
    const subject = newSubject();
    const authenticator = createSoftwareAuthenticator();
    const { factorId, ceremony } = await beginPasskey(h.client, subject, paymentsParty);
    const other = await beginPasskey(h.client, subject, paymentsParty);
    const registration = authenticator.register(ceremony);
    const attestationObject = Buffer.from(registration.response.attestationObject, "base64url");
    // "none" and "packed" are the formats Stepgate checks; rename the format in the CBOR map.
    const renamed = Buffer.from(
      attestationObject.toString("latin1").replace("cfmtdnone", "cfmtdtpm!"),
      "latin1",
    );
    const cases: [string, string, string][] = [
      ["another enrolment", JSON.stringify(authenticator.register(other.ceremony)), "wrong_challenge"],
      [
        "a wrong origin",
        JSON.stringify(authenticator.register({ ...ceremony, origin: "https://evil.example" })),
        "wrong_origin",
      ],
      [
        "a wrong RP id",
        JSON.stringify(authenticator.register({ ...ceremony, rpId: "evil.example" })),
        "wrong_rp",
      ],
      [
        "an unsupported format",
        JSON.stringify({
          ...registration,
          response: { ...registration.response, attestationObject: renamed.toString("base64url") },
        }),
        "attestation_unsupported",
      ],
      ["an assertion", JSON.stringify(authenticator.assert(ceremony)), "malformed"],
    ];
    for (const [name, attestationJson, refusal] of cases) {
      const refused = await failure(
        h.client.factors.finishPasskeyEnrollment({ subject, factorId, attestationJson }),
      );
      if (refusal === "malformed") assert.equal(refused.reason, "PASSKEY_MALFORMED", name);
      else assert.equal(refused.metadata.refusal, refusal, name);
    }
    const factors = (await h.client.factors.listFactors({ subject })).factors;
    assert.ok(factors.every((f) => f.status === FactorStatus.PENDING));
    await h.client.factors.finishPasskeyEnrollment({
      subject,
      factorId,
      attestationJson: JSON.stringify(registration),
    });
  });
});
