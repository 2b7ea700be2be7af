// An independent gRPC client: `buf curl` (Go, connect-go's gRPC protocol, HTTP/2 prior knowledge)
// finds the schema by server reflection and speaks protobuf JSON, sharing no code with Stepgate.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { BadRequestSchema, ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { createSoftwareAuthenticator } from "@stepgate/testkit/software-authenticator";
import { bufCurl } from "./support/buf-curl.ts";
import { newKey, newSession, newSubject } from "./support/flows.ts";
import { passkeyPolicy, paymentsParty } from "./support/passkeys.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

/** A unary call with a JSON body; asserts success and returns the parsed JSON response. */
async function call<T = Record<string, unknown>>(
  url: string,
  body: unknown,
  caller: string | null = "payments",
) {
  const result = await bufCurl([
    ...(caller === null ? [] : ["-H", `stepgate-caller: ${caller}`]),
    "-d",
    JSON.stringify(body),
    url,
  ]);
  assert.equal(result.code, 0, `buf curl ${url} failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

interface ErrorJson {
  code: string;
  message: string;
  details?: { type: string; value: string }[];
}

/** A failing call: the exit code is the gRPC code << 3 and the error JSON is on stderr. */
async function callFailing(url: string, body: unknown, caller: string | null = "payments") {
  const result = await bufCurl([
    ...(caller === null ? [] : ["-H", `stepgate-caller: ${caller}`]),
    "-d",
    JSON.stringify(body),
    url,
  ]);
  assert.notEqual(result.code, 0, "expected buf curl to fail");
  assert.equal(result.stdout, "");
  const error = JSON.parse(result.stderr) as ErrorJson;
  // Stepgate's reflection serves the service files and their imports, not google/rpc/error_details.proto,
  // so buf curl cannot render the details as JSON: they arrive as the base64 of the message.
  const detail = (type: string) => {
    const found = error.details?.find((d) => d.type === type);
    return found ? Buffer.from(found.value, "base64") : undefined;
  };
  const info = detail("google.rpc.ErrorInfo");
  const badRequest = detail("google.rpc.BadRequest");
  return {
    exitCode: result.code,
    error,
    reason: info ? fromBinary(ErrorInfoSchema, info).reason : undefined,
    domain: info ? fromBinary(ErrorInfoSchema, info).domain : undefined,
    fields: badRequest ? fromBinary(BadRequestSchema, badRequest).fieldViolations.map((v) => v.field) : [],
  };
}

const stepgateMethods = [
  "stepgate.v1.StepUpService/StepUp",
  "stepgate.v1.StepUpService/Verify",
  "stepgate.v1.StepUpService/CheckGrant",
  "stepgate.v1.StepUpService/EndSession",
  "stepgate.v1.StepUpService/GetJwks",
  "stepgate.v1.FactorService/EnrollTotp",
  "stepgate.v1.FactorService/ConfirmTotp",
  "stepgate.v1.FactorService/BeginPasskeyEnrollment",
  "stepgate.v1.FactorService/FinishPasskeyEnrollment",
  "stepgate.v1.FactorService/CreateRecoveryCodes",
  "stepgate.v1.FactorService/ListFactors",
  "stepgate.v1.FactorService/RemoveFactor",
];

describe("interop with buf curl (gRPC over h2c, schema by reflection)", () => {
  let h: Harness;
  let base: string;
  const url = (method: string) => `${base}/${method}`;
  before(async () => {
    h = await startStepgate();
    base = `http://127.0.0.1:${h.port}`;
  });
  after(() => h.close());

  for (const reflectProtocol of [undefined, "grpc-v1", "grpc-v1alpha"]) {
    const flags = reflectProtocol ? ["--reflect-protocol", reflectProtocol] : [];
    it(`--list-services by reflection (${reflectProtocol ?? "default: v1, falling back to v1alpha"})`, async () => {
      const result = await bufCurl([...flags, "--list-services", base]);
      assert.equal(result.code, 0, result.stderr);
      const services = result.stdout.trim().split("\n");
      for (const service of [
        "stepgate.v1.StepUpService",
        "stepgate.v1.FactorService",
        "grpc.health.v1.Health",
      ]) {
        assert.ok(services.includes(service), `${service} in ${JSON.stringify(services)}`);
      }
    });
  }

  it("--list-methods lists every Stepgate method and the health check", async () => {
    for (const reflectProtocol of ["grpc-v1", "grpc-v1alpha"]) {
      const result = await bufCurl(["--reflect-protocol", reflectProtocol, "--list-methods", base]);
      assert.equal(result.code, 0, result.stderr);
      const methods = result.stdout.trim().split("\n");
      for (const method of [...stepgateMethods, "grpc.health.v1.Health/Check"]) {
        assert.ok(methods.includes(method), `${method} listed over ${reflectProtocol}`);
      }
    }
  });

  it("grpc.health.v1.Health/Check answers SERVING for the server and each service, NOT_FOUND for others", async () => {
    assert.deepEqual(await call(url("grpc.health.v1.Health/Check"), {}, null), { status: "SERVING" });
    for (const service of ["stepgate.v1.StepUpService", "stepgate.v1.FactorService"]) {
      assert.deepEqual(await call(url("grpc.health.v1.Health/Check"), { service }, null), {
        status: "SERVING",
      });
    }
    const unknown = await callFailing(
      url("grpc.health.v1.Health/Check"),
      { service: "stepgate.v9.Nope" },
      null,
    );
    assert.equal(unknown.exitCode, 5 << 3);
    assert.equal(unknown.error.code, "not_found");
  });

  it("StepUp with a snake_case JSON body answers enrollmentRequired for a new subject", async () => {
    const res = await call(url("stepgate.v1.StepUpService/StepUp"), {
      subject: newSubject(),
      session_id: newSession(),
      action: "payments.transfer",
      context: { ip: "192.0.2.1" },
    });
    assert.deepEqual(res, {
      enrollmentRequired: { requiredAcr: "aal2", methods: ["METHOD_TOTP"], maxAge: 300 },
    });
  });

  it("a full flow in JSON: enrol, confirm, step up, verify, check the grant, end the session", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";

    const enrolled = await call<{ factorId: string; otpauthUri: string; secret: string; confirmBy: string }>(
      url("stepgate.v1.FactorService/EnrollTotp"),
      { subject, label: "Phone", account_name: `${subject}@example.com` },
    );
    const uri = new URL(enrolled.otpauthUri);
    assert.equal(uri.protocol, "otpauth:");
    assert.equal(uri.host, "totp");
    assert.equal(decodeURIComponent(uri.pathname), `/Stepgate:${subject}@example.com`);
    assert.equal(uri.searchParams.get("secret"), enrolled.secret);
    assert.equal(uri.searchParams.get("issuer"), "Stepgate");
    assert.match(enrolled.secret, /^[A-Z2-7]{32}$/);
    assert.ok(Date.parse(enrolled.confirmBy) > h.clock.now(), "confirmBy is an RFC 3339 time ahead");

    const confirmed = await call<{
      factor: { factorId: string; method: string; status: string; label: string };
    }>(url("stepgate.v1.FactorService/ConfirmTotp"), {
      subject,
      factor_id: enrolled.factorId,
      code: h.code(enrolled.secret),
    });
    assert.equal(confirmed.factor.factorId, enrolled.factorId);
    assert.equal(confirmed.factor.method, "METHOD_TOTP");
    assert.equal(confirmed.factor.status, "FACTOR_STATUS_ACTIVE");
    assert.equal(confirmed.factor.label, "Phone");
    h.clock.advance(30_000);

    const listed = await call<{ factors: { factorId: string; secret?: unknown }[] }>(
      url("stepgate.v1.FactorService/ListFactors"),
      { subject },
    );
    assert.deepEqual(
      listed.factors.map((f) => f.factorId),
      [enrolled.factorId],
    );
    assert.ok(!JSON.stringify(listed).includes(enrolled.secret), "the secret is never listed");

    const stepped = await call<{
      challenge: {
        challengeId: string;
        methods: string[];
        requiredAcr: string;
        expiresAt: string;
        attemptsRemaining: number;
      };
    }>(url("stepgate.v1.StepUpService/StepUp"), { subject, session_id: sessionId, action });
    assert.deepEqual(stepped.challenge.methods, ["METHOD_TOTP"]);
    assert.equal(stepped.challenge.requiredAcr, "aal2");
    assert.equal(stepped.challenge.attemptsRemaining, 5);
    assert.ok(Date.parse(stepped.challenge.expiresAt) > h.clock.now());

    const verified = await call<{
      grant: { token: string; acr: string; amr: string[]; grantId: string };
      method: string;
    }>(url("stepgate.v1.StepUpService/Verify"), {
      challenge_id: stepped.challenge.challengeId,
      subject,
      session_id: sessionId,
      action,
      proof: { totp_code: h.code(enrolled.secret) },
      idempotency_key: newKey(),
    });
    assert.equal(verified.method, "METHOD_TOTP");
    assert.equal(verified.grant.acr, "aal2");
    assert.deepEqual(verified.grant.amr, ["otp"]);

    const checked = await call<{ subject: string; sessionId: string; action: string; grantId: string }>(
      url("stepgate.v1.StepUpService/CheckGrant"),
      { token: verified.grant.token, action },
    );
    assert.deepEqual(
      [checked.subject, checked.sessionId, checked.action, checked.grantId],
      [subject, sessionId, action, verified.grant.grantId],
    );
    // The grant buf curl obtained verifies offline with the typed client, against the JWKS.
    const offline = await h.client.verifyGrant(verified.grant.token, { action, subject, sessionId });
    assert.equal(offline.aud, "payments");

    const jwks = await call<{
      jwksJson: string;
      keys: { kid: string; kty: string; crv: string; alg: string }[];
    }>(url("stepgate.v1.StepUpService/GetJwks"), {});
    assert.ok(jwks.keys.length >= 1);
    assert.deepEqual(
      { kty: jwks.keys[0]?.kty, crv: jwks.keys[0]?.crv, alg: jwks.keys[0]?.alg },
      { kty: "OKP", crv: "Ed25519", alg: "EdDSA" },
    );
    assert.deepEqual(
      (JSON.parse(jwks.jwksJson) as { keys: { kid: string }[] }).keys.map((k) => k.kid),
      jwks.keys.map((k) => k.kid),
    );

    // EndSessionResponse is empty: buf curl prints {}.
    assert.deepEqual(
      await call(url("stepgate.v1.StepUpService/EndSession"), { subject, session_id: sessionId }),
      {},
    );
    const revoked = await callFailing(url("stepgate.v1.StepUpService/CheckGrant"), {
      token: verified.grant.token,
      action,
    });
    assert.equal(revoked.reason, "GRANT_REVOKED");
  });

  it("an unknown action exits with NOT_FOUND << 3 and the error JSON on stderr, reason UNKNOWN_ACTION", async () => {
    const failed = await callFailing(url("stepgate.v1.StepUpService/StepUp"), {
      subject: newSubject(),
      session_id: newSession(),
      action: "payments.refund",
    });
    assert.equal(failed.exitCode, 40);
    assert.equal(failed.error.code, "not_found");
    assert.equal(failed.error.message, "no policy for this action");
    assert.deepEqual(
      failed.error.details?.map((d) => d.type),
      ["google.rpc.ErrorInfo"],
    );
    assert.equal(failed.reason, "UNKNOWN_ACTION");
    assert.equal(failed.domain, "stepgate.v1");
  });

  it("no caller header: UNAUTHENTICATED (exit 128), reason CALLER_REQUIRED", async () => {
    const failed = await callFailing(
      url("stepgate.v1.StepUpService/StepUp"),
      { subject: newSubject(), session_id: newSession(), action: "payments.transfer" },
      null,
    );
    assert.equal(failed.exitCode, 16 << 3);
    assert.equal(failed.error.code, "unauthenticated");
    assert.equal(failed.reason, "CALLER_REQUIRED");
  });

  it("an empty request: INVALID_ARGUMENT (exit 24) with the BadRequest field names", async () => {
    const failed = await callFailing(url("stepgate.v1.FactorService/EnrollTotp"), {});
    assert.equal(failed.exitCode, 3 << 3);
    assert.equal(failed.error.code, "invalid_argument");
    assert.deepEqual(failed.fields, ["subject", "label", "account_name"]);
  });

  it("a wrong code: PERMISSION_DENIED (exit 56), reason WRONG_CODE", async () => {
    const subject = newSubject();
    const enrolled = await call<{ factorId: string; secret: string }>(
      url("stepgate.v1.FactorService/EnrollTotp"),
      {
        subject,
        label: "Phone",
        account_name: "a",
      },
    );
    const near = new Set([-1, 0, 1, 2].map((offset) => h.code(enrolled.secret, offset)));
    const failed = await callFailing(url("stepgate.v1.FactorService/ConfirmTotp"), {
      subject,
      factor_id: enrolled.factorId,
      code: ["000000", "111111", "222222", "333333"].find((c) => !near.has(c)),
    });
    assert.equal(failed.exitCode, 7 << 3);
    assert.equal(failed.reason, "WRONG_CODE");
  });
});

describe("interop with buf curl: passkeys in protobuf JSON", () => {
  let h: Harness;
  let base: string;
  const url = (method: string) => `${base}/${method}`;
  before(async () => {
    h = await startStepgate({ policy: passkeyPolicy });
    base = `http://127.0.0.1:${h.port}`;
  });
  after(() => h.close());

  it("enrols a passkey, steps up with it and verifies; a malformed assertion is INVALID_ARGUMENT (exit 24)", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";
    const authenticator = createSoftwareAuthenticator({ algorithm: "EdDSA" });
    const begun = await call<{ factorId: string; creationOptionsJson: string }>(
      url("stepgate.v1.FactorService/BeginPasskeyEnrollment"),
      { subject, label: "Laptop", user_name: `${subject}@example.com` },
    );
    const creation = JSON.parse(begun.creationOptionsJson) as { challenge: string; rp: { id: string } };
    assert.equal(creation.rp.id, paymentsParty.rpId);
    const finished = await call<{ factor: { method: string; status: string } }>(
      url("stepgate.v1.FactorService/FinishPasskeyEnrollment"),
      {
        subject,
        factor_id: begun.factorId,
        attestation_json: JSON.stringify(
          authenticator.register({ ...paymentsParty, challenge: creation.challenge }),
        ),
      },
    );
    assert.equal(finished.factor.method, "METHOD_PASSKEY");
    assert.equal(finished.factor.status, "FACTOR_STATUS_ACTIVE");

    const stepped = await call<{
      challenge: { challengeId: string; methods: string[]; passkeyRequestOptionsJson: string };
    }>(url("stepgate.v1.StepUpService/StepUp"), { subject, session_id: sessionId, action });
    assert.deepEqual(stepped.challenge.methods, ["METHOD_PASSKEY"]);
    const request = JSON.parse(stepped.challenge.passkeyRequestOptionsJson) as { challenge: string };
    const verify = (value: string) => ({
      challenge_id: stepped.challenge.challengeId,
      subject,
      session_id: sessionId,
      action,
      proof: { passkey_assertion_json: value },
      idempotency_key: newKey(),
    });
    const malformed = await callFailing(url("stepgate.v1.StepUpService/Verify"), verify('{"id": 1}'));
    assert.equal(malformed.exitCode, 3 << 3);
    assert.equal(malformed.reason, "PASSKEY_MALFORMED");
    const assertion = JSON.stringify(
      authenticator.assert({ ...paymentsParty, challenge: request.challenge }),
    );
    const verified = await call<{ grant: { acr: string; amr: string[] }; method: string }>(
      url("stepgate.v1.StepUpService/Verify"),
      verify(assertion),
    );
    assert.equal(verified.method, "METHOD_PASSKEY");
    assert.equal(verified.grant.acr, "aal3");
    assert.deepEqual(verified.grant.amr, ["hwk", "user", "mfa"]);
  });
});
