import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { DescMethodUnary } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { FactorService, StepUpService } from "@stepgate/api";
import { BadRequestSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { withServerInterceptors } from "@stepgate/grpc-bridge";
import { handlerContextFor } from "@stepgate/testkit/handler-context";
import fc from "fast-check";
import { validateRequests } from "./validate-requests.ts";

const validate = validateRequests();

/** The BadRequest fields (field: description) a request gets, or [] when it reaches the handler. */
async function violations(method: DescMethodUnary, init: Record<string, unknown>) {
  const ctx = handlerContextFor(method);
  const call = withServerInterceptors(method, () => ({}), [validate]);
  try {
    await call(create(method.input, init as never), ctx);
    return [];
  } catch (error) {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.InvalidArgument);
    const [badRequest] = error.findDetails(BadRequestSchema);
    return (badRequest?.fieldViolations ?? []).map((v) => `${v.field}: ${v.description}`);
  }
}

/** C0 controls and DEL, the characters no Stepgate text field takes. */
const hasControlCharacter = (value: string) =>
  [...value].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f);

const stepUp = { subject: "alice", sessionId: "s-1", action: "payments.transfer" };
const verify = {
  challengeId: "A".repeat(22),
  subject: "alice",
  sessionId: "s-1",
  action: "payments.transfer",
  idempotencyKey: "key-12345",
  proof: { kind: { case: "totpCode", value: "123456" } },
};
const factorId = "0b7e4c1a-2f3d-4e5f-8a9b-0c1d2e3f4a5b";

describe("request rules from the protos (validateRequests)", () => {
  it("passes a valid request on to the handler", async () => {
    assert.deepEqual(await violations(StepUpService.method.stepUp, stepUp), []);
    assert.deepEqual(await violations(StepUpService.method.verify, verify), []);
    assert.deepEqual(await violations(StepUpService.method.getJwks, {}), []);
  });

  it("names each field once, with the descriptions a caller reads", async () => {
    assert.deepEqual(await violations(StepUpService.method.stepUp, {}), [
      "subject: is required",
      "session_id: is required",
      "action: is required",
    ]);
    assert.deepEqual(await violations(StepUpService.method.stepUp, { ...stepUp, subject: "a".repeat(257) }), [
      "subject: must be at most 256 bytes",
    ]);
    assert.deepEqual(await violations(StepUpService.method.stepUp, { ...stepUp, action: "pay\x7fments" }), [
      "action: must not contain control characters",
    ]);
  });

  it("names map entries by their key, cut to 64 characters and JSON-quoted", async () => {
    const context = { ["\u0000".repeat(70)]: "v", ip: "\n" };
    assert.deepEqual(await violations(StepUpService.method.stepUp, { ...stepUp, context }), [
      `context[${JSON.stringify("\u0000".repeat(64))}]: must be at most 64 bytes`,
      'context["ip"]: must not contain control characters',
    ]);
  });

  it("Stepgate's own rules: ids, codes, keys and the authenticator's label", async () => {
    const v = (init: object) => violations(StepUpService.method.verify, { ...verify, ...init });
    assert.deepEqual(await v({ challengeId: "short" }), ["challenge_id: is not a challenge id"]);
    assert.deepEqual(await v({ idempotencyKey: "1234567" }), [
      "idempotency_key: must be 8 to 128 printable ASCII characters",
    ]);
    assert.deepEqual(await v({ idempotencyKey: "x".repeat(128) }), []);
    assert.deepEqual(await v({ proof: { kind: { case: "totpCode", value: "12345a" } } }), [
      "proof.totp_code: must be six digits",
    ]);
    assert.deepEqual(await v({ proof: {} }), ["proof.kind: exactly one field is required in oneof"]);
    const remove = { subject: "alice", factorId, grant: "g" };
    assert.deepEqual(await violations(FactorService.method.removeFactor, remove), []);
    assert.deepEqual(
      await violations(FactorService.method.removeFactor, { ...remove, factorId: factorId.toUpperCase() }),
      ["factor_id: is not a factor id"],
    );
    const enrol = { subject: "alice", label: "Phone", accountName: "alice%3Aexample" };
    assert.deepEqual(await violations(FactorService.method.enrollTotp, enrol), [
      "account_name: must not contain a colon: it separates issuer and account in the authenticator's label",
    ]);
  });

  it("an optional field is checked only when it is set", async () => {
    const list = { subject: "alice", grant: "", idempotencyKey: "" };
    assert.deepEqual(await violations(FactorService.method.createRecoveryCodes, list), []);
    assert.deepEqual(await violations(FactorService.method.createRecoveryCodes, { ...list, grant: "a\tb" }), [
      "grant: must not contain control characters",
    ]);
  });

  it("a subject is refused exactly when it is empty, over 256 UTF-8 bytes or holds a control character", async () => {
    await fc.assert(
      fc.asyncProperty(fc.string({ unit: "binary", maxLength: 300 }), async (subject) => {
        const refused = (await violations(StepUpService.method.stepUp, { ...stepUp, subject })).length > 0;
        const expected = subject === "" || Buffer.byteLength(subject) > 256 || hasControlCharacter(subject);
        assert.equal(refused, expected, JSON.stringify(subject));
      }),
      { numRuns: 300 },
    );
  });
});
