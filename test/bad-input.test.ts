// Bad input on every RPC: each gets a clear gRPC status (INVALID_ARGUMENT with the BadRequest
// field names, NOT_FOUND, PERMISSION_DENIED, RESOURCE_EXHAUSTED, UNAUTHENTICATED), never a crash,
// and a rejected factor change leaves no row created or changed.
import assert from "node:assert/strict";
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import { type Client, Code, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { FactorService, StepUpRequestSchema, StepUpService } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { connectErrorFromStatus, createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { assertCallLines, logsOf } from "./support/call-logs.ts";
import { expectFailure } from "./support/errors.ts";
import { challenge, enrolTotp, newKey, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import { assertKeyUri } from "./support/key-uri.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

/** A well-formed factor id that no factor has. */
const unknownFactorId = "00000000-0000-4000-8000-000000000000";
/** A well-formed challenge id (base64url, 16 to 64 characters) that no challenge has. */
const unknownChallengeId = "AAAAAAAAAAAAAAAAAAAAAA";
/** The server's gRPC message limit (create-server.ts). */
const maxMessageBytes = 64 * 1024;

const totp = (value: string) => ({ kind: { case: "totpCode" as const, value } });
const recovery = (value: string) => ({ kind: { case: "recoveryCode" as const, value } });
const passkey = (value: string) => ({ kind: { case: "passkeyAssertionJson" as const, value } });

/** Every unary RPC of both services, by gRPC path. */
const allPaths = [
  "/stepgate.v1.StepUpService/StepUp",
  "/stepgate.v1.StepUpService/Verify",
  "/stepgate.v1.StepUpService/CheckGrant",
  "/stepgate.v1.StepUpService/EndSession",
  "/stepgate.v1.StepUpService/GetJwks",
  "/stepgate.v1.FactorService/EnrollTotp",
  "/stepgate.v1.FactorService/ConfirmTotp",
  "/stepgate.v1.FactorService/BeginPasskeyEnrollment",
  "/stepgate.v1.FactorService/FinishPasskeyEnrollment",
  "/stepgate.v1.FactorService/CreateRecoveryCodes",
  "/stepgate.v1.FactorService/ListFactors",
  "/stepgate.v1.FactorService/RemoveFactor",
];

/** Expects INVALID_ARGUMENT whose BadRequest names exactly `fields`, in order. */
async function expectInvalid(call: Promise<unknown>, fields: string[], secret?: string) {
  const f = await expectFailure(call, Code.InvalidArgument);
  assert.deepEqual(f.fields, fields, f.message);
  if (secret !== undefined) assert.ok(!f.message.includes(secret), "the message must not echo the value");
  return f;
}

type RawResult =
  | { ok: true; value: Buffer }
  | { ok: false; code: grpc.status; details: string; error: grpc.ServiceError };

/** A unary call with hand-made request bytes, as a client for another schema would send. */
function rawCall(client: grpc.Client, path: string, bytes: Uint8Array, metadata = callerMetadata()) {
  return new Promise<RawResult>((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(bytes),
      metadata,
      { deadline: Date.now() + 5000 },
      (error, value) =>
        resolve(
          error
            ? { ok: false, code: error.code, details: error.details, error }
            : { ok: true, value: value ?? Buffer.alloc(0) },
        ),
    );
  });
}

function callerMetadata(...callers: string[]) {
  const metadata = new grpc.Metadata();
  for (const caller of callers.length > 0 ? callers : ["payments"]) metadata.add("stepgate-caller", caller);
  return metadata;
}

function assertStatus(result: RawResult, code: grpc.status, details?: RegExp, what = "") {
  assert.equal(result.ok, false, `${what}: expected the call to fail`);
  if (result.ok) return;
  assert.equal(grpc.status[result.code], grpc.status[code], `${what}: ${result.details}`);
  if (details) assert.match(result.details, details);
}

/** A well-formed protobuf message holding only unknown field 15 with `n` bytes. */
function unknownFieldMessage(n: number): Uint8Array {
  return new BinaryWriter().tag(15, WireType.LengthDelimited).bytes(new Uint8Array(n)).finish();
}

async function healthStatus(client: grpc.Client) {
  const result = await rawCall(
    client,
    "/grpc.health.v1.Health/Check",
    toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema)),
  );
  assert.ok(result.ok, result.ok ? "" : result.details);
  return fromBinary(HealthCheckResponseSchema, result.value).status;
}

/** Every factor row, recovery code and factor audit event of a subject, to compare before and after. */
async function factorState(h: Harness, subject: string) {
  // Audit events are written in batches: settle the queue so the comparison sees them all.
  await h.flushAudit();
  const factors = await h.db.query(
    `select id, method, status, label, secret, key_id, last_step, last_claim, recovery_salt,
            created_at, confirm_by, confirmed_at, last_used_at
     from factors where subject = $1 order by id`,
    [subject],
  );
  const codes = await h.db.query(
    `select c.id, c.factor_id, c.code_hash, c.used_at, c.used_claim
     from recovery_codes c join factors f on f.id = c.factor_id where f.subject = $1 order by c.id`,
    [subject],
  );
  const events = await h.db.query(
    `select type from audit_events
     where subject = $1 and (type like 'factor.%' or type like 'recovery_codes.%') order by id`,
    [subject],
  );
  return { factors, codes, events };
}

/** A grant for `action` (a fresh session each time, then the clock moves on to the next TOTP step). */
async function grantFor(h: Harness, subject: string, secret: string, action: string) {
  const verified = await stepUpWithTotp(h, subject, newSession(), action, secret);
  h.clock.advance(30_000);
  assert.ok(verified.grant);
  return verified.grant.token;
}

/** A six-digit code that matches no step the server accepts now (one step of skew, plus one for drift). */
function wrongCode(h: Harness, secret: string): string {
  const near = new Set([-1, 0, 1, 2].map((offset) => h.code(secret, offset)));
  return ["000000", "111111", "222222", "333333", "444444"].find((c) => !near.has(c)) as string;
}

describe("bad input: field validation (INVALID_ARGUMENT with BadRequest field names)", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate();
  });
  after(() => h.close());

  const s = newSubject();
  const sid = newSession();
  const action = "payments.transfer";
  const key = newKey();

  describe("StepUp", () => {
    it("empty request names every required field", async () => {
      await expectInvalid(h.client.stepUp.stepUp({}), ["subject", "session_id", "action"]);
    });
    it("a subject of 257 bytes", async () => {
      await expectInvalid(h.client.stepUp.stepUp({ subject: "a".repeat(257), sessionId: sid, action }), [
        "subject",
      ]);
    });
    it("limits count UTF-8 bytes, not characters: 129 two-byte characters are too many", async () => {
      await expectInvalid(
        h.client.stepUp.stepUp({ subject: "é".repeat(129), sessionId: "é".repeat(129), action }),
        ["subject", "session_id"],
      );
    });
    it("an action over 128 bytes", async () => {
      await expectInvalid(h.client.stepUp.stepUp({ subject: s, sessionId: sid, action: "a".repeat(129) }), [
        "action",
      ]);
    });
    it("control characters (NUL, TAB, LF, DEL) in subject, session and action", async () => {
      await expectInvalid(
        h.client.stepUp.stepUp({ subject: "user\u0000x", sessionId: "s\tx", action: "payments.transfer\n" }),
        ["subject", "session_id", "action"],
      );
      await expectInvalid(h.client.stepUp.stepUp({ subject: "user\u007f", sessionId: sid, action }), [
        "subject",
      ]);
    });
    it("a context of 17 entries", async () => {
      const context = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, "v"]));
      await expectInvalid(h.client.stepUp.stepUp({ subject: s, sessionId: sid, action, context }), [
        "context",
      ]);
    });
    it("context keys and values: too long, empty, control characters", async () => {
      const longKey = "k".repeat(65);
      await expectInvalid(
        h.client.stepUp.stepUp({
          subject: s,
          sessionId: sid,
          action,
          context: { [longKey]: "v", ip: "1".repeat(257), "": "empty key", tab: "a\tb" },
        }),
        [`context["${"k".repeat(64)}"]`, `context["ip"]`, `context[""]`, `context["tab"]`],
      );
    });
    it("accepts every field at its limit", async () => {
      const context = Object.fromEntries(
        Array.from({ length: 16 }, (_, i) => [String(i).padStart(64, "k"), "v".repeat(256)]),
      );
      const res = await h.client.stepUp.stepUp({
        subject: "é".repeat(128),
        sessionId: "s".repeat(256),
        action,
        context,
      });
      assert.equal(res.outcome.case, "enrollmentRequired");
    });
  });

  describe("Verify", () => {
    const valid = {
      challengeId: unknownChallengeId,
      subject: s,
      sessionId: sid,
      action,
      idempotencyKey: key,
    };
    it("empty request names every required field, in the order the proto declares them", async () => {
      // A plain Connect client over grpc-js: @stepgate/client would fill the idempotency key.
      const channel = new grpc.Channel(h.target, grpc.credentials.createInsecure(), {});
      try {
        const plain = createClient(StepUpService, createGrpcJsTransport({ channel, defaultTimeoutMs: 5000 }));
        await expectInvalid(plain.verify({}, { headers: { "stepgate-caller": "payments" } }), [
          "challenge_id",
          "subject",
          "session_id",
          "action",
          "proof",
          "idempotency_key",
        ]);
      } finally {
        channel.close();
      }
      // Through @stepgate/client, every call carries a key of its own.
      await expectInvalid(h.client.stepUp.verify({}), [
        "challenge_id",
        "subject",
        "session_id",
        "action",
        "proof",
      ]);
    });
    it("a challenge id with bad characters, too short or too long", async () => {
      for (const challengeId of ["abc/def+ghi=jklmnop", "abc def ghi jklmnop", "short", "A".repeat(65)]) {
        await expectInvalid(h.client.stepUp.verify({ ...valid, challengeId, proof: totp("123456") }), [
          "challenge_id",
        ]);
      }
    });
    it("no proof", async () => {
      await expectInvalid(h.client.stepUp.verify(valid), ["proof"]);
      // A proof that holds no kind of answer names the oneof.
      await expectInvalid(h.client.stepUp.verify({ ...valid, proof: {} }), ["proof.kind"]);
    });
    it("a TOTP code that is not six digits, without echoing it", async () => {
      for (const code of ["12345a", "12345", "1234567", " 123456", "１２３４５６"]) {
        await expectInvalid(
          h.client.stepUp.verify({ ...valid, proof: totp(code) }),
          ["proof.totp_code"],
          code,
        );
      }
      await expectInvalid(h.client.stepUp.verify({ ...valid, proof: totp("") }), ["proof.totp_code"]);
    });
    it("a recovery code that is empty, too long or has control characters", async () => {
      for (const code of ["", "x".repeat(65), "abcd\u0000efgh"]) {
        await expectInvalid(h.client.stepUp.verify({ ...valid, proof: recovery(code) }), [
          "proof.recovery_code",
        ]);
      }
    });
    it("a passkey assertion that is empty or over 16 KiB", async () => {
      await expectInvalid(h.client.stepUp.verify({ ...valid, proof: passkey("") }), [
        "proof.passkey_assertion_json",
      ]);
      await expectInvalid(h.client.stepUp.verify({ ...valid, proof: passkey(`"${"x".repeat(16_384)}"`) }), [
        "proof.passkey_assertion_json",
      ]);
    });
    it("an idempotency key too short, too long, with spaces or outside printable ASCII", async () => {
      for (const idempotencyKey of [
        "short",
        "1234567",
        "k".repeat(129),
        "key with space",
        "ключ-ключ-ключ",
      ]) {
        await expectInvalid(h.client.stepUp.verify({ ...valid, idempotencyKey, proof: totp("123456") }), [
          "idempotency_key",
        ]);
      }
    });
    it("oversized subject, session and action", async () => {
      await expectInvalid(
        h.client.stepUp.verify({
          ...valid,
          subject: "s".repeat(257),
          sessionId: "s".repeat(257),
          action: "a".repeat(129),
          proof: totp("123456"),
        }),
        ["subject", "session_id", "action"],
      );
    });
  });

  describe("CheckGrant", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.stepUp.checkGrant({}), ["token", "action"]);
    });
    it("a 5000-character token, without echoing it", async () => {
      const token = `eyJ${"x".repeat(4997)}`;
      await expectInvalid(h.client.stepUp.checkGrant({ token, action }), ["token"], token);
    });
    it("control characters in the token and an oversized action", async () => {
      await expectInvalid(h.client.stepUp.checkGrant({ token: "a.b\n.c", action: "a".repeat(129) }), [
        "token",
        "action",
      ]);
    });
  });

  describe("EndSession", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.stepUp.endSession({}), ["subject", "session_id"]);
    });
    it("an oversized session id and a subject with a control character", async () => {
      await expectInvalid(h.client.stepUp.endSession({ subject: "a\u001bb", sessionId: "s".repeat(257) }), [
        "subject",
        "session_id",
      ]);
    });
    it("an unknown session is not an error: ending it is idempotent", async () => {
      await h.client.stepUp.endSession({ subject: newSubject(), sessionId: newSession() });
    });
  });

  describe("GetJwks", () => {
    it("takes no input: an empty request is valid and answers the key set", async () => {
      const res = await h.client.stepUp.getJwks({});
      const jwks = JSON.parse(res.jwksJson) as { keys: { kid: string }[] };
      assert.ok(res.keys.length >= 1);
      assert.deepEqual(
        jwks.keys.map((k) => k.kid),
        res.keys.map((k) => k.kid),
      );
    });
  });

  describe("EnrollTotp", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.factors.enrollTotp({}), ["subject", "label", "account_name"]);
    });
    it("a label over 64 bytes, an account name over 128 bytes, a grant over 4096 bytes", async () => {
      await expectInvalid(
        h.client.factors.enrollTotp({
          subject: s,
          label: "l".repeat(65),
          accountName: "a".repeat(129),
          grant: "g".repeat(4097),
        }),
        ["label", "account_name", "grant"],
      );
    });
    it("control characters in subject, label and account name", async () => {
      await expectInvalid(
        h.client.factors.enrollTotp({
          subject: "a\rb",
          label: "Phone\n",
          accountName: "x\u0000@example.com",
        }),
        ["subject", "label", "account_name"],
      );
    });
    it("a colon in the account name, raw or percent-encoded: the label's separator; nothing is enrolled", async () => {
      const subject = newSubject();
      for (const accountName of ["corp:alice", "corp%3Aalice", "corp%3aalice", ":"]) {
        await expectInvalid(h.client.factors.enrollTotp({ subject, label: "Phone", accountName }), [
          "account_name",
        ]);
      }
      assert.deepEqual((await h.client.factors.listFactors({ subject })).factors, []);
    });
    it("any other account name gives a URI in the Key URI Format with one separator", async () => {
      for (const accountName of ["alice@example.com", "Alice Smith", "a/b?c#d&e=f+g", "élise 名前", "100%"]) {
        const subject = newSubject();
        const enrolled = await h.client.factors.enrollTotp({ subject, label: "Phone", accountName });
        const uri = assertKeyUri(enrolled.otpauthUri);
        assert.equal(uri.accountName, accountName);
        assert.equal(uri.issuer, "Stepgate");
        assert.equal(uri.secret, enrolled.secret);
      }
    });
  });

  describe("ConfirmTotp", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.factors.confirmTotp({}), ["subject", "factor_id", "code"]);
    });
    it("a factor id that is not a lowercase UUID", async () => {
      for (const factorId of [
        "not-a-uuid",
        "00000000000040008000000000000000",
        "AAAAAAAA-0000-4000-8000-00000000000A",
        `${unknownFactorId}0`,
        "'; drop table factors; --",
      ]) {
        await expectInvalid(h.client.factors.confirmTotp({ subject: s, factorId, code: "123456" }), [
          "factor_id",
        ]);
      }
    });
    it("a code that is not six digits, without echoing it", async () => {
      for (const code of ["12345a", "12345", "1234567"]) {
        await expectInvalid(
          h.client.factors.confirmTotp({ subject: s, factorId: unknownFactorId, code }),
          ["code"],
          code,
        );
      }
    });
  });

  describe("BeginPasskeyEnrollment", () => {
    it("empty request names every required field", async () => {
      await expectInvalid(h.client.factors.beginPasskeyEnrollment({}), ["subject", "label", "user_name"]);
    });
    it("oversized label, names and grant, and control characters", async () => {
      await expectInvalid(
        h.client.factors.beginPasskeyEnrollment({
          subject: s,
          label: "l".repeat(65),
          userName: "u".repeat(129),
          displayName: "d\u0007",
          grant: "g".repeat(4097),
        }),
        ["label", "user_name", "display_name", "grant"],
      );
    });
  });

  describe("FinishPasskeyEnrollment", () => {
    it("empty request names every required field", async () => {
      await expectInvalid(h.client.factors.finishPasskeyEnrollment({}), [
        "subject",
        "factor_id",
        "attestation_json",
      ]);
    });
    it("a malformed factor id and an attestation over 16 KiB", async () => {
      await expectInvalid(
        h.client.factors.finishPasskeyEnrollment({
          subject: s,
          factorId: "1234",
          attestationJson: "x".repeat(16_385),
        }),
        ["factor_id", "attestation_json"],
      );
    });
    it("an unknown factor id is NOT_FOUND FACTOR_NOT_FOUND", async () => {
      await expectFailure(
        h.client.factors.finishPasskeyEnrollment({
          subject: s,
          factorId: unknownFactorId,
          attestationJson: "{}",
        }),
        Code.NotFound,
        "FACTOR_NOT_FOUND",
      );
    });
    it("a TOTP factor's id is not a passkey: FACTOR_NOT_FOUND, and the factor is untouched", async () => {
      const subject = newSubject();
      const { factorId } = await enrolTotp(h, subject);
      const before = await factorState(h, subject);
      await expectFailure(
        h.client.factors.finishPasskeyEnrollment({ subject, factorId, attestationJson: "{}" }),
        Code.NotFound,
        "FACTOR_NOT_FOUND",
      );
      assert.deepEqual(await factorState(h, subject), before);
    });
  });

  describe("CreateRecoveryCodes", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.factors.createRecoveryCodes({}), ["subject"]);
    });
    it("an oversized subject and grant", async () => {
      await expectInvalid(
        h.client.factors.createRecoveryCodes({ subject: "s".repeat(257), grant: "g".repeat(5000) }),
        ["subject", "grant"],
      );
    });
  });

  describe("ListFactors", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.factors.listFactors({}), ["subject"]);
    });
    it("an oversized subject", async () => {
      await expectInvalid(h.client.factors.listFactors({ subject: "s".repeat(257) }), ["subject"]);
    });
    it("an unknown subject has no factors: an empty list, not an error", async () => {
      assert.deepEqual((await h.client.factors.listFactors({ subject: newSubject() })).factors, []);
    });
  });

  describe("RemoveFactor", () => {
    it("empty request", async () => {
      await expectInvalid(h.client.factors.removeFactor({}), ["subject", "factor_id"]);
    });
    it("a malformed factor id and an oversized grant", async () => {
      await expectInvalid(
        h.client.factors.removeFactor({ subject: s, factorId: "1234", grant: "g".repeat(4097) }),
        ["factor_id", "grant"],
      );
    });
  });

  it("bad input on every RPC: one log line per call, none failed or INTERNAL, none echoing a secret", async () => {
    const grant = `grant-${randomBytes(12).toString("hex")}`;
    const token = `eyJ${randomBytes(24).toString("base64url")}`;
    const recoveryCode = `rc-${randomBytes(9).toString("hex")}`;
    const code = "987654";
    // Each request is valid but for the named fields, so the secrets sit in fields that passed.
    const rejected: [string, () => Promise<unknown>, string[]][] = [
      [
        "StepUpService/StepUp",
        () => h.client.stepUp.stepUp({ subject: "user\u0000x", sessionId: sid, action }),
        ["subject"],
      ],
      [
        "StepUpService/Verify",
        () =>
          h.client.stepUp.verify({
            challengeId: "short",
            subject: s,
            sessionId: sid,
            action,
            proof: totp(code),
            idempotencyKey: key,
          }),
        ["challenge_id"],
      ],
      [
        "StepUpService/Verify",
        () =>
          h.client.stepUp.verify({
            challengeId: unknownChallengeId,
            subject: s,
            sessionId: sid,
            action,
            proof: recovery(recoveryCode),
            idempotencyKey: "short",
          }),
        ["idempotency_key"],
      ],
      [
        "StepUpService/CheckGrant",
        () => h.client.stepUp.checkGrant({ token, action: "a".repeat(129) }),
        ["action"],
      ],
      [
        "StepUpService/EndSession",
        () => h.client.stepUp.endSession({ subject: s, sessionId: "" }),
        ["session_id"],
      ],
      [
        "FactorService/EnrollTotp",
        () => h.client.factors.enrollTotp({ subject: s, label: "l".repeat(65), accountName: "a", grant }),
        ["label"],
      ],
      [
        "FactorService/ConfirmTotp",
        () => h.client.factors.confirmTotp({ subject: s, factorId: "not-a-uuid", code }),
        ["factor_id"],
      ],
      [
        "FactorService/BeginPasskeyEnrollment",
        () => h.client.factors.beginPasskeyEnrollment({ subject: s, label: "", userName: "u", grant }),
        ["label"],
      ],
      [
        "FactorService/FinishPasskeyEnrollment",
        () =>
          h.client.factors.finishPasskeyEnrollment({
            subject: s,
            factorId: "x",
            attestationJson: "{}",
            grant,
          }),
        ["factor_id"],
      ],
      [
        "FactorService/CreateRecoveryCodes",
        () => h.client.factors.createRecoveryCodes({ subject: "s".repeat(257), grant }),
        ["subject"],
      ],
      ["FactorService/ListFactors", () => h.client.factors.listFactors({ subject: "" }), ["subject"]],
      [
        "FactorService/RemoveFactor",
        () => h.client.factors.removeFactor({ subject: s, factorId: "1234", grant }),
        ["factor_id"],
      ],
    ];
    const lines = await logsOf(h, async () => {
      for (const [, call, fields] of rejected) await expectInvalid(call(), fields);
      // GetJwks takes no input: there is nothing in it to reject.
      await h.client.stepUp.getJwks({});
    });
    assertCallLines(
      lines,
      [...rejected.map(([rpc]) => `${rpc} INVALID_ARGUMENT`), "StepUpService/GetJwks OK"],
      [grant, token, recoveryCode, code],
    );
  });
});

describe("bad input on the wire (raw grpc-js client)", () => {
  let h: Harness;
  let raw: grpc.Client;
  before(async () => {
    h = await startStepgate();
    raw = new grpc.Client(h.target, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await h.close();
  });

  // grpc-js runs the method's deserializer before any handler; when protobuf-es throws, grpc-js
  // answers INTERNAL "Error deserializing request" itself (server-interceptors.ts), hiding the
  // parser's message unless GRPC_NODE_DEBUG_SEND_ERROR_DETAILS is set.
  // `string` marks bytes that are broken only as a string field 1: every request has one except
  // GetJwksRequest, for which field 1 is an unknown field that the parser skips.
  const undecodable: [string, number[], "any" | "string"][] = [
    ["three 0xff bytes (a tag whose varint never ends)", [0xff, 0xff, 0xff], "any"],
    ["a truncated varint field", [0x08], "any"],
    ["a length prefix longer than the message", [0x0a, 0x05, 0x61], "any"],
    ["an end-group tag with no group", [0x0c], "any"],
    ["field 1 (a string) sent as a varint: the wrong wire type", [0x08, 0x01], "string"],
    ["a string field holding invalid UTF-8", [0x0a, 0x02, 0xff, 0xfe], "string"],
  ];
  for (const [name, bytes, breaks] of undecodable) {
    it(`bytes that are not the method's message, ${name}: INTERNAL "Error deserializing request"`, async () => {
      for (const path of allPaths) {
        const result = await rawCall(raw, path, Buffer.from(bytes));
        if (breaks === "string" && path.endsWith("/GetJwks")) {
          assert.ok(result.ok, `${path}: an unknown field is skipped`);
          continue;
        }
        assertStatus(result, grpc.status.INTERNAL, /^Error deserializing request$/, path);
      }
    });
  }

  it("keeps serving after undecodable requests, on the same connection and on others", async () => {
    const lines = await logsOf(h, async () => {
      for (const path of allPaths) {
        const result = await rawCall(raw, path, Buffer.from([0xff, 0xff, 0xff]));
        assertStatus(result, grpc.status.INTERNAL, /^Error deserializing request$/, path);
      }
      assert.equal(await healthStatus(raw), HealthCheckResponse_ServingStatus.SERVING);
      const res = await h.client.stepUp.stepUp({
        subject: newSubject(),
        sessionId: newSession(),
        action: "payments.transfer",
      });
      assert.equal(res.outcome.case, "enrollmentRequired");
    });
    // No handler ran for the undecodable requests, yet each is logged once with the status sent.
    const refused = allPaths.map((p) => `${p.replace("/stepgate.v1.", "")} INTERNAL`);
    assertCallLines(lines, [...refused, "StepUpService/StepUp OK"]);
  });

  it("unknown fields are skipped: a message of only unknown fields is an empty request", async () => {
    const result = await rawCall(raw, "/stepgate.v1.StepUpService/StepUp", unknownFieldMessage(10));
    assertStatus(result, grpc.status.INVALID_ARGUMENT, /subject is required/);
    assert.ok((await rawCall(raw, "/stepgate.v1.StepUpService/GetJwks", unknownFieldMessage(10))).ok);
  });

  it("a request over 64 KiB is RESOURCE_EXHAUSTED on every RPC, before any handler runs", async () => {
    for (const path of allPaths) {
      const result = await rawCall(raw, path, unknownFieldMessage(70_000));
      assertStatus(result, grpc.status.RESOURCE_EXHAUSTED, /larger than max \(\d+ vs 65536\)/, path);
    }
    assert.equal(await healthStatus(raw), HealthCheckResponse_ServingStatus.SERVING);
  });

  it("the limit is exact: 65536 bytes are read, 65537 are refused", async () => {
    const atLimit = toBinary(
      StepUpRequestSchema,
      create(StepUpRequestSchema, { subject: "a".repeat(maxMessageBytes - 4) }),
    );
    assert.equal(atLimit.length, maxMessageBytes);
    const read = await rawCall(raw, "/stepgate.v1.StepUpService/StepUp", atLimit);
    // Read and parsed: it fails validation, not the size check.
    assertStatus(read, grpc.status.INVALID_ARGUMENT, /subject must be at most 256 bytes/);
    const jwks = await rawCall(raw, "/stepgate.v1.StepUpService/GetJwks", unknownFieldMessage(65_532));
    assert.ok(jwks.ok, "a 65536-byte GetJwks request is served");

    const overLimit = toBinary(
      StepUpRequestSchema,
      create(StepUpRequestSchema, { subject: "a".repeat(maxMessageBytes - 3) }),
    );
    assert.equal(overLimit.length, maxMessageBytes + 1);
    assertStatus(
      await rawCall(raw, "/stepgate.v1.StepUpService/StepUp", overLimit),
      grpc.status.RESOURCE_EXHAUSTED,
      /65537 vs 65536/,
    );
  });

  it("oversized requests from the typed client are RESOURCE_EXHAUSTED too, and write nothing", async () => {
    const subject = newSubject();
    await expectFailure(
      h.client.stepUp.stepUp({ subject: "a".repeat(70_000), sessionId: newSession(), action: "x" }),
      Code.ResourceExhausted,
    );
    await expectFailure(
      h.client.stepUp.verify({
        challengeId: unknownChallengeId,
        subject,
        sessionId: newSession(),
        action: "payments.transfer",
        proof: recovery("r".repeat(70_000)),
        idempotencyKey: newKey(),
      }),
      Code.ResourceExhausted,
    );
    await expectFailure(
      h.client.stepUp.checkGrant({ token: "t".repeat(70_000), action: "payments.transfer" }),
      Code.ResourceExhausted,
    );
    await expectFailure(
      h.client.factors.enrollTotp({ subject, label: "l".repeat(70_000), accountName: "a" }),
      Code.ResourceExhausted,
    );
    await expectFailure(
      h.client.factors.createRecoveryCodes({ subject, grant: "g".repeat(70_000) }),
      Code.ResourceExhausted,
    );
    assert.deepEqual(await factorState(h, subject), { factors: [], codes: [], events: [] });
  });

  it("an unknown method or service is UNIMPLEMENTED", async () => {
    assertStatus(
      await rawCall(raw, "/stepgate.v1.StepUpService/Elevate", new Uint8Array()),
      grpc.status.UNIMPLEMENTED,
    );
    assertStatus(
      await rawCall(raw, "/stepgate.v2.StepUpService/StepUp", new Uint8Array()),
      grpc.status.UNIMPLEMENTED,
    );
  });
});

describe("bad input: the stepgate-caller header", () => {
  let h: Harness;
  let channel: grpc.Channel;
  let raw: grpc.Client;
  // A Connect client over a plain grpc-js channel: it sends no caller header unless told to.
  let stepUp: Client<typeof StepUpService>;
  let factors: Client<typeof FactorService>;
  before(async () => {
    h = await startStepgate();
    channel = new grpc.Channel(h.target, grpc.credentials.createInsecure(), {});
    const transport = createGrpcJsTransport({ channel, defaultTimeoutMs: 5000 });
    stepUp = createClient(StepUpService, transport);
    factors = createClient(FactorService, transport);
    raw = new grpc.Client(h.target, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    channel.close();
    await h.close();
  });

  const defaultSubject = newSubject();
  const sessionId = newSession();
  const action = "payments.transfer";
  /** Well-formed requests to every RPC that needs a caller, so only the header is wrong. */
  const calls = (headers?: Record<string, string>, subject = defaultSubject) => {
    const options = headers ? { headers } : {};
    return {
      StepUp: () => stepUp.stepUp({ subject, sessionId, action }, options),
      Verify: () =>
        stepUp.verify(
          {
            challengeId: unknownChallengeId,
            subject,
            sessionId,
            action,
            proof: totp("123456"),
            idempotencyKey: newKey(),
          },
          options,
        ),
      CheckGrant: () => stepUp.checkGrant({ token: "a.b.c", action }, options),
      EndSession: () => stepUp.endSession({ subject, sessionId }, options),
      EnrollTotp: () =>
        factors.enrollTotp({ subject, label: "Phone", accountName: "someone@example.com" }, options),
      ConfirmTotp: () => factors.confirmTotp({ subject, factorId: unknownFactorId, code: "123456" }, options),
      BeginPasskeyEnrollment: () =>
        factors.beginPasskeyEnrollment(
          { subject, label: "Laptop", userName: "someone@example.com" },
          options,
        ),
      FinishPasskeyEnrollment: () =>
        factors.finishPasskeyEnrollment(
          { subject, factorId: unknownFactorId, attestationJson: "{}" },
          options,
        ),
      CreateRecoveryCodes: () => factors.createRecoveryCodes({ subject }, options),
      ListFactors: () => factors.listFactors({ subject }, options),
      RemoveFactor: () => factors.removeFactor({ subject, factorId: unknownFactorId }, options),
    };
  };

  it("a missing header is UNAUTHENTICATED CALLER_REQUIRED on every RPC that acts for a caller", async () => {
    for (const [name, call] of Object.entries(calls())) {
      const f = await expectFailure(call(), Code.Unauthenticated, "CALLER_REQUIRED");
      assert.match(f.message, /stepgate-caller/, name);
    }
  });

  it("the caller is checked before the fields: an empty request without a caller is UNAUTHENTICATED", async () => {
    await expectFailure(stepUp.stepUp({}), Code.Unauthenticated, "CALLER_REQUIRED");
    await expectFailure(factors.enrollTotp({}), Code.Unauthenticated, "CALLER_REQUIRED");
  });

  it("malformed caller names are UNAUTHENTICATED CALLER_REQUIRED", async () => {
    for (const caller of [
      "",
      "Payments",
      "-payments",
      ".payments",
      "pay ments",
      "payments!",
      "a".repeat(65),
    ]) {
      for (const [name, call] of Object.entries(calls({ "stepgate-caller": caller }))) {
        const f = await expectFailure(call(), Code.Unauthenticated, "CALLER_REQUIRED");
        assert.ok(f.fields.length === 0, `${name} with caller ${JSON.stringify(caller)}`);
      }
    }
  });

  it("two stepgate-caller values are refused, not resolved to either", async () => {
    const result = await rawCall(
      raw,
      "/stepgate.v1.FactorService/ListFactors",
      new Uint8Array([0x0a, 0x01, 0x78]),
      callerMetadata("payments", "billing"),
    );
    assertStatus(result, grpc.status.UNAUTHENTICATED);
    if (!result.ok) {
      const error = connectErrorFromStatus(result.error);
      assert.equal(error.findDetails(ErrorInfoSchema)[0]?.reason, "CALLER_REQUIRED");
    }
  });

  it("well-formed caller names are accepted, up to 64 characters", async () => {
    for (const caller of ["payments", "billing.v2_x-y", "0", "a".repeat(64)]) {
      const res = await factors.listFactors(
        { subject: defaultSubject },
        { headers: { "stepgate-caller": caller } },
      );
      assert.deepEqual(res.factors, []);
    }
  });

  it("a rejected caller writes nothing, where the same requests from a valid caller would", async () => {
    const subject = newSubject();
    const rpcs = Object.keys(calls()).map(
      (name) =>
        `${StepUpService.methods.some((m) => m.name === name) ? "StepUpService" : "FactorService"}/${name} UNAUTHENTICATED`,
    );
    const lines = await logsOf(h, async () => {
      for (const headers of [undefined, { "stepgate-caller": "Payments" }]) {
        for (const call of Object.values(calls(headers, subject))) {
          await expectFailure(call(), Code.Unauthenticated, "CALLER_REQUIRED");
        }
      }
    });
    // Each was refused by its handler, which logged it.
    assertCallLines(lines, [...rpcs, ...rpcs]);
    assert.deepEqual(await factorState(h, subject), { factors: [], codes: [], events: [] });
    // The same requests are writes: with a valid caller, EnrollTotp and CreateRecoveryCodes write rows.
    const valid = calls({ "stepgate-caller": "payments" }, subject);
    await valid.EnrollTotp();
    await valid.CreateRecoveryCodes();
    const written = await factorState(h, subject);
    assert.equal(written.factors.length, 2);
    assert.ok(written.codes.length > 0);
  });

  // GetJwks does not check the header (step-up-handlers.ts): the key set is public, meant to be
  // served at a jwks_uri. Recorded here so that a change either way is a decision.
  it("GetJwks answers without a caller: the key set is public", async () => {
    const res = await stepUp.getJwks({});
    assert.ok(res.keys.length >= 1);
  });
});

for (const redis of [true, false]) {
  const hotStore = redis ? "redis" : "postgresql";

  describe(`bad input with state (hot state in ${hotStore})`, () => {
    let h: Harness;
    before(async () => {
      h = await startStepgate({ redis });
    });
    after(() => h.close());

    describe("unknown ids", () => {
      it("an unknown challenge id is NOT_FOUND CHALLENGE_NOT_FOUND", async () => {
        await expectFailure(
          h.client.stepUp.verify({
            challengeId: unknownChallengeId,
            subject: newSubject(),
            sessionId: newSession(),
            action: "payments.transfer",
            proof: totp("123456"),
            idempotencyKey: newKey(),
          }),
          Code.NotFound,
          "CHALLENGE_NOT_FOUND",
        );
      });

      it("an unknown action is NOT_FOUND UNKNOWN_ACTION", async () => {
        for (const action of ["payments.refund", "stepgate.enroll", "PAYMENTS.TRANSFER"]) {
          await expectFailure(
            h.client.stepUp.stepUp({ subject: newSubject(), sessionId: newSession(), action }),
            Code.NotFound,
            "UNKNOWN_ACTION",
          );
        }
      });

      it("an unknown factor is NOT_FOUND FACTOR_NOT_FOUND, and so is another subject's", async () => {
        const subject = newSubject();
        await expectFailure(
          h.client.factors.confirmTotp({ subject, factorId: unknownFactorId, code: "123456" }),
          Code.NotFound,
          "FACTOR_NOT_FOUND",
        );
        await expectFailure(
          h.client.factors.removeFactor({ subject, factorId: unknownFactorId }),
          Code.NotFound,
          "FACTOR_NOT_FOUND",
        );
        const owner = newSubject();
        const enrolled = await h.client.factors.enrollTotp({
          subject: owner,
          label: "Phone",
          accountName: "o",
        });
        const before = await factorState(h, owner);
        await expectFailure(
          h.client.factors.confirmTotp({
            subject,
            factorId: enrolled.factorId,
            code: h.code(enrolled.secret),
          }),
          Code.NotFound,
          "FACTOR_NOT_FOUND",
        );
        await expectFailure(
          h.client.factors.removeFactor({ subject, factorId: enrolled.factorId }),
          Code.NotFound,
          "FACTOR_NOT_FOUND",
        );
        assert.deepEqual(await factorState(h, owner), before);
      });
    });

    describe("wrong answers", () => {
      it("ConfirmTotp with a wrong code is PERMISSION_DENIED WRONG_CODE with attempts_remaining, then locks", async () => {
        const subject = newSubject();
        const enrolled = await h.client.factors.enrollTotp({ subject, label: "Phone", accountName: "a" });
        const before = await factorState(h, subject);
        assert.equal(before.factors.length, 1);
        assert.equal(before.factors[0]?.status, "pending");
        for (const remaining of ["4", "3", "2", "1", "0"]) {
          const f = await expectFailure(
            h.client.factors.confirmTotp({
              subject,
              factorId: enrolled.factorId,
              code: wrongCode(h, enrolled.secret),
            }),
            Code.PermissionDenied,
            "WRONG_CODE",
          );
          assert.deepEqual(f.metadata, { attempts_remaining: remaining });
          assert.deepEqual(await factorState(h, subject), before, "a wrong code changes no row");
        }
        // Out of attempts: even the right code is refused, and the factor stays pending.
        const locked = await expectFailure(
          h.client.factors.confirmTotp({
            subject,
            factorId: enrolled.factorId,
            code: h.code(enrolled.secret),
          }),
          Code.ResourceExhausted,
          "CHALLENGE_LOCKED",
        );
        assert.equal(locked.metadata.attempts_remaining, "0");
        assert.deepEqual(await factorState(h, subject), before);
      });

      it("Verify with a wrong TOTP code is PERMISSION_DENIED WRONG_CODE with attempts_remaining", async () => {
        const subject = newSubject();
        const sessionId = newSession();
        const action = "payments.transfer";
        const { secret } = await enrolTotp(h, subject);
        const c = await challenge(h.client, subject, sessionId, action);
        const f = await expectFailure(
          h.client.stepUp.verify({
            challengeId: c.challengeId,
            subject,
            sessionId,
            action,
            proof: totp(wrongCode(h, secret)),
            idempotencyKey: newKey(),
          }),
          Code.PermissionDenied,
          "WRONG_CODE",
        );
        assert.equal(f.metadata.attempts_remaining, String(c.attemptsRemaining - 1));
      });

      it("Verify with a method the challenge does not allow is FAILED_PRECONDITION METHOD_NOT_ALLOWED", async () => {
        const subject = newSubject();
        const sessionId = newSession();
        const action = "payments.transfer"; // methods: [totp]
        const { secret } = await enrolTotp(h, subject);
        const c = await challenge(h.client, subject, sessionId, action);
        await expectFailure(
          h.client.stepUp.verify({
            challengeId: c.challengeId,
            subject,
            sessionId,
            action,
            proof: recovery("abcd-efgh-ijkl"),
            idempotencyKey: newKey(),
          }),
          Code.FailedPrecondition,
          "METHOD_NOT_ALLOWED",
        );
        // The challenge is untouched: the right answer still works.
        const ok = await h.client.stepUp.verify({
          challengeId: c.challengeId,
          subject,
          sessionId,
          action,
          proof: totp(h.code(secret)),
          idempotencyKey: newKey(),
        });
        assert.ok(ok.grant);
        h.clock.advance(30_000);
      });
    });

    describe("garbage grants in CheckGrant are PERMISSION_DENIED GRANT_INVALID", () => {
      let token: string;
      before(async () => {
        const subject = newSubject();
        const { secret } = await enrolTotp(h, subject);
        token = await grantFor(h, subject, secret, "payments.transfer");
      });
      const action = "payments.transfer";

      it("strings that are not a JWT", async () => {
        for (const garbage of ["garbage", "a.b.c", "...", "x".repeat(4096), "eyJhbGciOiJFZERTQSJ9"]) {
          await expectFailure(
            h.client.stepUp.checkGrant({ token: garbage, action }),
            Code.PermissionDenied,
            "GRANT_INVALID",
          );
        }
      });

      it("an unsigned (alg none) token", async () => {
        const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
        const [, payload] = token.split(".");
        const none = `${b64({ alg: "none", typ: "JWT" })}.${payload}.`;
        await expectFailure(
          h.client.stepUp.checkGrant({ token: none, action }),
          Code.PermissionDenied,
          "GRANT_INVALID",
        );
      });

      it("a real grant with its signature or claims altered", async () => {
        const [header, payload, signature] = token.split(".") as [string, string, string];
        const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`;
        await expectFailure(
          h.client.stepUp.checkGrant({ token: `${header}.${payload}.${flipped}`, action }),
          Code.PermissionDenied,
          "GRANT_INVALID",
        );
        const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
        const forged = Buffer.from(JSON.stringify({ ...claims, sub: "someone-else" })).toString("base64url");
        await expectFailure(
          h.client.stepUp.checkGrant({ token: `${header}.${forged}.${signature}`, action }),
          Code.PermissionDenied,
          "GRANT_INVALID",
        );
      });

      it("a grant signed by another Ed25519 key under the server's kid", async () => {
        const [header, payload] = token.split(".") as [string, string, string];
        const { privateKey } = generateKeyPairSync("ed25519");
        const signature = sign(null, Buffer.from(`${header}.${payload}`), privateKey).toString("base64url");
        await expectFailure(
          h.client.stepUp.checkGrant({ token: `${header}.${payload}.${signature}`, action }),
          Code.PermissionDenied,
          "GRANT_INVALID",
        );
      });

      it("the real grant still checks after garbage and altered copies of it (they consumed nothing)", async () => {
        const [header, payload, signature] = token.split(".") as [string, string, string];
        const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`;
        for (const garbage of ["garbage", `${header}.${payload}.${flipped}`, `${header}.${payload}.`]) {
          await expectFailure(
            h.client.stepUp.checkGrant({ token: garbage, action }),
            Code.PermissionDenied,
            "GRANT_INVALID",
          );
        }
        const res = await h.client.stepUp.checkGrant({ token, action });
        assert.equal(res.action, action);
      });
    });

    describe("nothing half-written: rejected factor changes leave the factors table as it was", () => {
      // Grants are fetched before the "before" snapshot: a successful Verify records the TOTP step.
      it("EnrollTotp: invalid, no grant, garbage grant, wrong action, another caller's; pending ones never block", async () => {
        const fresh = newSubject();
        await expectInvalid(
          h.client.factors.enrollTotp({ subject: fresh, label: "l".repeat(65), accountName: "a" }),
          ["label"],
        );
        assert.deepEqual(await factorState(h, fresh), { factors: [], codes: [], events: [] });

        const subject = newSubject();
        const { secret } = await enrolTotp(h, subject);
        const transferGrant = await grantFor(h, subject, secret, "payments.transfer");
        const enrollGrant = await grantFor(h, subject, secret, "stepgate.enroll_totp");
        const before = await factorState(h, subject);
        const enroll = (grant: string, client = h.client) =>
          client.factors.enrollTotp({ subject, label: "Attacker", accountName: "evil", grant });
        await expectFailure(enroll(""), Code.PermissionDenied, "GRANT_REQUIRED");
        await expectFailure(enroll("garbage"), Code.PermissionDenied, "GRANT_INVALID");
        await expectFailure(enroll(transferGrant), Code.PermissionDenied, "GRANT_MISMATCH");
        await expectFailure(
          enroll(enrollGrant, h.clientAs("billing")),
          Code.PermissionDenied,
          "GRANT_MISMATCH",
        );
        assert.deepEqual(await factorState(h, subject), before);
        // The right grant from the right caller enrols: the rejections were about the grant alone.
        await enroll(enrollGrant);
        assert.equal((await factorState(h, subject)).factors.length, 2);

        // Five unconfirmed enrolments are the most a subject keeps: a sixth drops the oldest, so
        // enrolments left unconfirmed (by anyone) never block the user's own.
        const pending = newSubject();
        for (let i = 0; i < 5; i++) {
          await h.client.factors.enrollTotp({ subject: pending, label: `Phone ${i}`, accountName: "p" });
        }
        assert.equal((await factorState(h, pending)).factors.length, 5);
        const sixth = await h.client.factors.enrollTotp({
          subject: pending,
          label: "Phone 6",
          accountName: "p",
        });
        const labels = (await h.client.factors.listFactors({ subject: pending })).factors.map((f) => f.label);
        assert.deepEqual(labels.sort(), ["Phone 1", "Phone 2", "Phone 3", "Phone 4", "Phone 6"]);
        await h.client.factors.confirmTotp({
          subject: pending,
          factorId: sixth.factorId,
          code: h.code(sixth.secret),
        });
      });

      it("ConfirmTotp: invalid code, wrong code, wrong subject, already active", async () => {
        const subject = newSubject();
        const enrolled = await h.client.factors.enrollTotp({ subject, label: "Phone", accountName: "a" });
        const before = await factorState(h, subject);
        await expectInvalid(
          h.client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: "12345a" }),
          ["code"],
        );
        await expectFailure(
          h.client.factors.confirmTotp({
            subject,
            factorId: enrolled.factorId,
            code: wrongCode(h, enrolled.secret),
          }),
          Code.PermissionDenied,
          "WRONG_CODE",
        );
        await expectFailure(
          h.client.factors.confirmTotp({
            subject: newSubject(),
            factorId: enrolled.factorId,
            code: h.code(enrolled.secret),
          }),
          Code.NotFound,
          "FACTOR_NOT_FOUND",
        );
        assert.deepEqual(await factorState(h, subject), before);

        await h.client.factors.confirmTotp({
          subject,
          factorId: enrolled.factorId,
          code: h.code(enrolled.secret),
        });
        h.clock.advance(30_000);
        const active = await factorState(h, subject);
        assert.equal(active.factors[0]?.status, "active");
        await expectFailure(
          h.client.factors.confirmTotp({
            subject,
            factorId: enrolled.factorId,
            code: h.code(enrolled.secret),
          }),
          Code.FailedPrecondition,
          "FACTOR_STATE",
        );
        assert.deepEqual(await factorState(h, subject), active);
      });

      it("CreateRecoveryCodes: no grant, garbage grant, wrong action, another caller's, a used grant", async () => {
        const subject = newSubject();
        const { secret } = await enrolTotp(h, subject);
        const removeGrant = await grantFor(h, subject, secret, "stepgate.remove_factor");
        const grant = await grantFor(h, subject, secret, "stepgate.create_recovery_codes");
        const create = (g: string, client = h.client) =>
          client.factors.createRecoveryCodes({ subject, grant: g });
        const before = await factorState(h, subject);
        await expectFailure(create(""), Code.PermissionDenied, "GRANT_REQUIRED");
        await expectFailure(create("garbage"), Code.PermissionDenied, "GRANT_INVALID");
        await expectFailure(create(removeGrant), Code.PermissionDenied, "GRANT_MISMATCH");
        await expectFailure(create(grant, h.clientAs("billing")), Code.PermissionDenied, "GRANT_MISMATCH");
        assert.deepEqual(await factorState(h, subject), before);

        // The grant the rejected calls could not use still works once, and only once.
        const created = await create(grant);
        assert.ok(created.codes.length > 0);
        const withCodes = await factorState(h, subject);
        assert.equal(withCodes.codes.length, created.codes.length);
        await expectFailure(create(grant), Code.PermissionDenied, "GRANT_CONSUMED");
        assert.deepEqual(await factorState(h, subject), withCodes, "the set was not replaced");
      });

      it("RemoveFactor: invalid id, no grant, garbage grant, wrong action, unknown factor, another subject", async () => {
        const subject = newSubject();
        const { factorId, secret } = await enrolTotp(h, subject);
        const enrollGrant = await grantFor(h, subject, secret, "stepgate.enroll_totp");
        const grant = await grantFor(h, subject, secret, "stepgate.remove_factor");
        const remove = (id: string, g: string, who = subject) =>
          h.client.factors.removeFactor({ subject: who, factorId: id, grant: g });
        const before = await factorState(h, subject);
        await expectInvalid(remove("not-a-factor", ""), ["factor_id"]);
        await expectFailure(remove(factorId, ""), Code.PermissionDenied, "GRANT_REQUIRED");
        await expectFailure(remove(factorId, "garbage"), Code.PermissionDenied, "GRANT_INVALID");
        await expectFailure(remove(factorId, enrollGrant), Code.PermissionDenied, "GRANT_MISMATCH");
        await expectFailure(remove(unknownFactorId, grant), Code.NotFound, "FACTOR_NOT_FOUND");
        await expectFailure(remove(factorId, grant, newSubject()), Code.NotFound, "FACTOR_NOT_FOUND");
        assert.deepEqual(await factorState(h, subject), before);

        // None of those consumed the grant: it removes the factor once.
        await remove(factorId, grant);
        const after = await factorState(h, subject);
        assert.deepEqual(after.factors, []);
        assert.deepEqual(
          after.events.map((e) => e.type),
          ["factor.enrolled", "factor.confirmed", "factor.removed"],
        );
        // Sent again without its idempotency key, the spent grant of a removed factor is refused.
        await expectFailure(remove(factorId, grant), Code.PermissionDenied, "GRANT_REVOKED");
        assert.deepEqual(await factorState(h, subject), after);
      });
    });

    it("bad input with state: one log line per call, none failed or INTERNAL, none carrying a secret", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const action = "payments.transfer";
      const { factorId, secret } = await enrolTotp(h, subject);
      const token = await grantFor(h, subject, secret, action);
      const c = await challenge(h.client, subject, sessionId, action);
      const wrong = wrongCode(h, secret);
      const right = h.code(secret);
      const recoveryCode = `rc-${randomBytes(9).toString("hex")}`;
      const [header, payload, signature] = token.split(".") as [string, string, string];
      const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
      const forged = `${header}.${Buffer.from(JSON.stringify({ ...claims, sub: "someone-else" })).toString("base64url")}.${signature}`;
      const verify = (challengeId: string, proof: ReturnType<typeof totp> | ReturnType<typeof recovery>) =>
        h.client.stepUp.verify({ challengeId, subject, sessionId, action, proof, idempotencyKey: newKey() });
      const lines = await logsOf(h, async () => {
        await expectFailure(verify(unknownChallengeId, totp(wrong)), Code.NotFound, "CHALLENGE_NOT_FOUND");
        await expectFailure(
          verify(c.challengeId, recovery(recoveryCode)),
          Code.FailedPrecondition,
          "METHOD_NOT_ALLOWED",
        );
        await expectFailure(verify(c.challengeId, totp(wrong)), Code.PermissionDenied, "WRONG_CODE");
        await expectFailure(
          h.client.stepUp.stepUp({ subject, sessionId, action: "payments.refund" }),
          Code.NotFound,
          "UNKNOWN_ACTION",
        );
        await expectFailure(
          h.client.stepUp.checkGrant({ token, action: "account.change_email" }),
          Code.PermissionDenied,
          "GRANT_MISMATCH",
        );
        await expectFailure(
          h.client.stepUp.checkGrant({ token: forged, action }),
          Code.PermissionDenied,
          "GRANT_INVALID",
        );
        await expectFailure(
          h.client.factors.enrollTotp({ subject, label: "Tablet", accountName: "a", grant: token }),
          Code.PermissionDenied,
          "GRANT_MISMATCH",
        );
        await expectFailure(
          h.client.factors.confirmTotp({ subject, factorId, code: right }),
          Code.FailedPrecondition,
          "FACTOR_STATE",
        );
        await expectFailure(
          h.client.factors.createRecoveryCodes({ subject, grant: token }),
          Code.PermissionDenied,
          "GRANT_MISMATCH",
        );
        await expectFailure(
          h.client.factors.removeFactor({ subject, factorId, grant: token }),
          Code.PermissionDenied,
          "GRANT_MISMATCH",
        );
      });
      assertCallLines(
        lines,
        [
          "StepUpService/Verify NOT_FOUND",
          "StepUpService/Verify FAILED_PRECONDITION",
          "StepUpService/Verify PERMISSION_DENIED",
          "StepUpService/StepUp NOT_FOUND",
          "StepUpService/CheckGrant PERMISSION_DENIED",
          "StepUpService/CheckGrant PERMISSION_DENIED",
          "FactorService/EnrollTotp PERMISSION_DENIED",
          "FactorService/ConfirmTotp FAILED_PRECONDITION",
          "FactorService/CreateRecoveryCodes PERMISSION_DENIED",
          "FactorService/RemoveFactor PERMISSION_DENIED",
        ],
        [secret, token, forged, signature, wrong, right, recoveryCode],
      );
    });
  });
}
