import assert from "node:assert/strict";
import { test } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcServiceDefinition } from "./grpc-service-definition.ts";

test("methods are keyed by proto name, with paths and streaming kinds", () => {
  const definition = createGrpcServiceDefinition(Health);
  assert.deepEqual(
    Object.entries(definition).map(([key, method]) => [
      key,
      method.path,
      method.requestStream,
      method.responseStream,
      method.originalName,
    ]),
    Health.methods.map((method) => [
      method.name,
      `/grpc.health.v1.Health/${method.name}`,
      false,
      method.methodKind === "server_streaming",
      method.localName,
    ]),
  );
  assert.equal(definition.Watch?.responseStream, true);
});

test("serializers accept init shapes and messages, deserializers return messages", () => {
  const check = createGrpcServiceDefinition(Health).Check;
  assert.ok(check);
  const expected = toBinary(
    HealthCheckRequestSchema,
    create(HealthCheckRequestSchema, { service: "stepgate" }),
  );
  assert.deepEqual(new Uint8Array(check.requestSerialize({ service: "stepgate" })), expected);
  assert.deepEqual(
    new Uint8Array(check.requestSerialize(create(HealthCheckRequestSchema, { service: "stepgate" }))),
    expected,
  );
  const response = create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING });
  const bytes = check.responseSerialize(response);
  assert.ok(Buffer.isBuffer(bytes));
  assert.deepEqual(check.responseDeserialize(bytes), fromBinary(HealthCheckResponseSchema, bytes));
  assert.deepEqual(check.responseDeserialize(bytes), response);
});
