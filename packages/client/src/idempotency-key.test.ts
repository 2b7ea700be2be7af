import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create, toBinary } from "@bufbuild/protobuf";
import {
  EnrollTotpRequestSchema,
  ListFactorsRequestSchema,
  RemoveFactorRequestSchema,
} from "@stepgate/api/gen/stepgate/v1/factor_service_pb";
import {
  CheckGrantRequestSchema,
  VerifyRequestSchema,
} from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { withIdempotencyKey } from "./idempotency-key.ts";

const printable = /^[\x21-\x7e]{8,128}$/;
const keyOf = (request: object) => (request as { idempotencyKey?: unknown }).idempotencyKey;

describe("withIdempotencyKey", () => {
  it("fills an empty key on a copy, with 8 to 128 printable ASCII characters", () => {
    const input = { token: "t", action: "secrets.read" };
    const sent = withIdempotencyKey(CheckGrantRequestSchema, input);
    assert.notEqual(sent, input);
    assert.equal(Object.hasOwn(input, "idempotencyKey"), false, "the caller's object is unchanged");
    assert.match(String(keyOf(sent)), printable);
    assert.equal(sent.token, "t");
    const explicitEmpty = withIdempotencyKey(RemoveFactorRequestSchema, {
      factorId: "f",
      idempotencyKey: "",
    });
    assert.match(explicitEmpty.idempotencyKey, printable);
  });

  it("gives each call its own key", () => {
    const keys = new Set(
      Array.from({ length: 50 }, () => keyOf(withIdempotencyKey(EnrollTotpRequestSchema, {}))),
    );
    assert.equal(keys.size, 50);
  });

  it("keeps a key the caller set (Verify's, usually)", () => {
    const input = { challengeId: "c", idempotencyKey: "caller-key-0001" };
    assert.equal(withIdempotencyKey(VerifyRequestSchema, input), input);
  });

  it("copies a message made with create() and keeps it a message of its type", () => {
    const message = create(CheckGrantRequestSchema, { token: "t", action: "a" });
    const sent = withIdempotencyKey(CheckGrantRequestSchema, message);
    assert.equal(message.idempotencyKey, "");
    assert.equal(sent.$typeName, CheckGrantRequestSchema.typeName);
    assert.ok(toBinary(CheckGrantRequestSchema, create(CheckGrantRequestSchema, sent)).length > 0);
  });

  it("leaves requests without the field alone", () => {
    const input = { subject: "alice" };
    assert.equal(withIdempotencyKey(ListFactorsRequestSchema, input), input);
  });
});
