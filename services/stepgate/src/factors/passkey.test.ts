import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { createSoftwareAuthenticator, type PasskeyAlgorithm } from "@stepgate/testkit/software-authenticator";
import { type PasskeyCredential, type PasskeyRequirement, passkeyAmr, passkeyChallenge } from "./passkey.ts";
import { verifyAssertion, verifyEnrollment } from "./passkey-ceremonies.ts";

const relyingParty = {
  id: "payments.example.com",
  name: "Payments",
  origins: ["https://payments.example.com"],
};
const ceremony = (challenge: string) => ({
  rpId: relyingParty.id,
  origin: relyingParty.origins[0] ?? "",
  challenge,
});
const anyPasskey: PasskeyRequirement = { userVerification: false, deviceBound: false };
const strict: PasskeyRequirement = { userVerification: true, deviceBound: true };
const key = randomBytes(32);
const binding = {
  challengeId: "ch-1",
  subject: "alice",
  sessionId: "s-1",
  action: "payments.transfer",
  caller: "payments",
};

/** An enrolled authenticator and its stored credential. */
async function enrolled(options: Parameters<typeof createSoftwareAuthenticator>[0] = {}) {
  const authenticator = createSoftwareAuthenticator(options);
  const challenge = randomBytes(32).toString("base64url");
  const result = await verifyEnrollment({
    responseJson: JSON.stringify(authenticator.register(ceremony(challenge))),
    challenge,
    relyingParty,
    requirement: anyPasskey,
  });
  assert.ok(result.ok, result.ok ? "" : result.refusal);
  return { authenticator, credential: result.value.credential };
}

async function assertWith(
  credential: PasskeyCredential,
  responseJson: string,
  requirement = anyPasskey,
  challenge = passkeyChallenge(key, binding),
) {
  return verifyAssertion({ responseJson, challenge, relyingParty, requirement, credentials: [credential] });
}

describe("passkeys (WebAuthn ceremonies)", () => {
  for (const algorithm of ["ES256", "EdDSA"] as PasskeyAlgorithm[]) {
    for (const attestation of ["none", "packed"] as const) {
      it(`enrols a ${algorithm} passkey with "${attestation}" attestation and verifies its assertion`, async () => {
        const authenticator = createSoftwareAuthenticator({ algorithm });
        const challenge = randomBytes(32).toString("base64url");
        const result = await verifyEnrollment({
          responseJson: JSON.stringify(authenticator.register(ceremony(challenge), attestation)),
          challenge,
          relyingParty,
          requirement: strict,
        });
        assert.ok(result.ok, result.ok ? "" : result.refusal);
        assert.equal(result.value.format, attestation);
        assert.equal(result.value.credential.backupEligible, false);
        const webauthnChallenge = passkeyChallenge(key, binding);
        const asserted = await assertWith(
          result.value.credential,
          JSON.stringify(authenticator.assert(ceremony(webauthnChallenge))),
          strict,
        );
        assert.ok(asserted.ok, asserted.ok ? "" : asserted.refusal);
        assert.equal(asserted.value.counter, 1);
        assert.deepEqual(passkeyAmr(asserted.value), ["hwk", "user", "mfa"]);
      });
    }
  }

  it("binds the WebAuthn challenge to Stepgate's challenge, subject, session, action and caller", () => {
    const base = passkeyChallenge(key, binding);
    for (const field of Object.keys(binding) as (keyof typeof binding)[]) {
      assert.notEqual(passkeyChallenge(key, { ...binding, [field]: `${binding[field]}x` }), base, field);
    }
    // Length-prefixed: moving a character from one field to the next changes it too.
    assert.notEqual(passkeyChallenge(key, { ...binding, subject: "alic", sessionId: "es-1" }), base);
    assert.notEqual(passkeyChallenge(randomBytes(32), binding), base);
  });

  it("refuses an assertion made for another session's challenge, page, RP id, or a wrong ceremony", async () => {
    const { authenticator, credential } = await enrolled();
    const other = passkeyChallenge(key, { ...binding, sessionId: "s-2" });
    const forOther = JSON.stringify(authenticator.assert(ceremony(other)));
    assert.deepEqual(await assertWith(credential, forOther), { ok: false, refusal: "wrong_challenge" });
    const challenge = passkeyChallenge(key, binding);
    const phishing = authenticator.assert({
      ...ceremony(challenge),
      origin: "https://payments.example.com.evil",
    });
    assert.deepEqual(await assertWith(credential, JSON.stringify(phishing)), {
      ok: false,
      refusal: "wrong_origin",
    });
    // The right origin, but inside another site's frame: the browser says crossOrigin.
    const framed = authenticator.assert(ceremony(challenge));
    const clientData = JSON.parse(
      Buffer.from(framed.response.clientDataJSON, "base64url").toString(),
    ) as object;
    const inFrame = {
      ...framed,
      response: {
        ...framed.response,
        clientDataJSON: Buffer.from(JSON.stringify({ ...clientData, crossOrigin: true })).toString(
          "base64url",
        ),
      },
    };
    assert.deepEqual(await assertWith(credential, JSON.stringify(inFrame)), {
      ok: false,
      refusal: "wrong_origin",
    });
    const otherRp = authenticator.assert({ ...ceremony(challenge), rpId: "example.com" });
    assert.deepEqual(await assertWith(credential, JSON.stringify(otherRp)), {
      ok: false,
      refusal: "wrong_rp",
    });
    const registration = JSON.stringify(authenticator.register(ceremony(challenge)));
    assert.deepEqual(await assertWith(credential, registration), { ok: false, refusal: "malformed" });
  });

  it("refuses what the action's requirement excludes: no user verification, a synced passkey", async () => {
    const noUv = await enrolled({ userVerified: false });
    const challenge = passkeyChallenge(key, binding);
    const answer = JSON.stringify(noUv.authenticator.assert(ceremony(challenge)));
    assert.deepEqual(await assertWith(noUv.credential, answer, strict), {
      ok: false,
      refusal: "user_verification_missing",
    });
    const synced = await enrolled({ backupEligible: true });
    const syncedAnswer = JSON.stringify(synced.authenticator.assert(ceremony(challenge)));
    assert.deepEqual(
      await assertWith(synced.credential, syncedAnswer, { ...strict, userVerification: false }),
      {
        ok: false,
        refusal: "backup_eligible",
      },
    );
    const ok = await assertWith(
      synced.credential,
      JSON.stringify(synced.authenticator.assert(ceremony(challenge))),
    );
    assert.ok(ok.ok);
    assert.deepEqual(passkeyAmr(ok.value), ["swk", "user", "mfa"]);
  });

  it("refuses a counter that did not grow (a cloned authenticator) and an unknown credential", async () => {
    const { authenticator, credential } = await enrolled();
    const challenge = passkeyChallenge(key, binding);
    const first = await assertWith(credential, JSON.stringify(authenticator.assert(ceremony(challenge))));
    assert.ok(first.ok);
    const stored = { ...credential, counter: first.value.counter };
    authenticator.counter = 0; // the clone's counter restarts
    const cloned = JSON.stringify(authenticator.assert(ceremony(challenge)));
    assert.deepEqual(await assertWith(stored, cloned), { ok: false, refusal: "counter_regressed" });
    const stranger = createSoftwareAuthenticator();
    stranger.register(ceremony(challenge));
    const unknown = JSON.stringify(stranger.assert(ceremony(challenge)));
    assert.deepEqual(await assertWith(credential, unknown), { ok: false, refusal: "unknown_credential" });
  });

  it("refuses a signature another key made, malformed and oversized answers", async () => {
    const { authenticator, credential } = await enrolled();
    const challenge = passkeyChallenge(key, binding);
    const impostor = createSoftwareAuthenticator();
    impostor.register(ceremony(challenge));
    const forged = {
      ...impostor.assert(ceremony(challenge)),
      id: credential.credentialId,
      rawId: credential.credentialId,
    };
    assert.deepEqual(await assertWith(credential, JSON.stringify(forged)), {
      ok: false,
      refusal: "bad_signature",
    });
    for (const bad of ["", "{", "[]", '{"id":1}', "x".repeat(20_000)]) {
      assert.deepEqual(
        await assertWith(credential, bad),
        { ok: false, refusal: "malformed" },
        bad.slice(0, 10),
      );
    }
    const answer = authenticator.assert(ceremony(challenge));
    const bigClientData = Buffer.from(
      JSON.stringify({
        type: "webauthn.get",
        challenge,
        origin: relyingParty.origins[0],
        pad: "p".repeat(3000),
      }),
    ).toString("base64url");
    const oversized = { ...answer, response: { ...answer.response, clientDataJSON: bigClientData } };
    assert.deepEqual(await assertWith(credential, JSON.stringify(oversized)), {
      ok: false,
      refusal: "malformed",
    });
  });

  it("enrolment: refuses another format, an AAGUID off the list, a synced passkey where device-bound is required", async () => {
    const challenge = randomBytes(32).toString("base64url");
    const authenticator = createSoftwareAuthenticator({ aaguid: "11111111-2222-3333-4444-555555555555" });
    const registration = authenticator.register(ceremony(challenge), "packed");
    const enrol = (responseJson: string, requirement: PasskeyRequirement = anyPasskey) =>
      verifyEnrollment({ responseJson, challenge, relyingParty, requirement });
    const allowOther = { ...anyPasskey, aaguids: ["aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"] };
    assert.deepEqual(await enrol(JSON.stringify(registration), allowOther), {
      ok: false,
      refusal: "aaguid_not_allowed",
    });
    const allowIt = { ...anyPasskey, aaguids: ["11111111-2222-3333-4444-555555555555"] };
    assert.ok((await enrol(JSON.stringify(registration), allowIt)).ok);
    const synced = createSoftwareAuthenticator({ backupEligible: true }).register(ceremony(challenge));
    assert.deepEqual(await enrol(JSON.stringify(synced), strict), { ok: false, refusal: "backup_eligible" });
    const otherPage = authenticator.register({ ...ceremony(challenge), origin: "https://evil.example" });
    assert.deepEqual(await enrol(JSON.stringify(otherPage)), { ok: false, refusal: "wrong_origin" });
    const otherRp = authenticator.register({ ...ceremony(challenge), rpId: "evil.example" });
    assert.deepEqual(await enrol(JSON.stringify(otherRp)), { ok: false, refusal: "wrong_rp" });
    const u2f = JSON.stringify(registration).replace(
      registration.response.attestationObject,
      relabelFormat(registration.response.attestationObject, "fido-u2f"),
    );
    const refusedU2f = await enrol(u2f);
    assert.deepEqual(refusedU2f, { ok: false, refusal: "attestation_unsupported" });
  });
});

/** The attestation object with its format renamed ("packed" -> another name of the same length or not). */
function relabelFormat(attestationObject: string, format: string): string {
  const bytes = Buffer.from(attestationObject, "base64url");
  const at = bytes.indexOf(Buffer.from("packed"));
  const head = bytes.subarray(0, at - 1);
  const tail = bytes.subarray(at + "packed".length);
  // CBOR text string header: major type 3 with the length in the low bits (formats are short).
  return Buffer.concat([head, Buffer.from([0x60 + format.length]), Buffer.from(format), tail]).toString(
    "base64url",
  );
}
