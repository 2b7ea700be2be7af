import assert from "node:assert/strict";
import { test } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { connectErrorFromStatus, statusDetailsFromError, statusDetailsKey } from "./error-details.ts";

function serviceError(code: grpc.status, details: string, metadata: grpc.Metadata): grpc.ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata });
}

test("details survive the trip through grpc-status-details-bin, incoming ones as raw bytes", () => {
  const original = new ConnectError("locked", Code.PermissionDenied, undefined, [
    { desc: ErrorInfoSchema, value: { reason: "SUBJECT_LOCKED", domain: "stepgate.dev" } },
  ]);
  const trailer = new grpc.Metadata();
  trailer.set(statusDetailsKey, statusDetailsFromError(original));
  trailer.set("stepgate-trace", "t-7");
  const received = connectErrorFromStatus(serviceError(grpc.status.PERMISSION_DENIED, "locked", trailer));
  assert.equal(received.code, Code.PermissionDenied);
  assert.equal(received.rawMessage, "locked");
  assert.equal(received.metadata.get("stepgate-trace"), "t-7");
  assert.equal(received.findDetails(ErrorInfoSchema)[0]?.reason, "SUBJECT_LOCKED");
  assert.deepEqual(
    received.details.map((detail) => ("type" in detail ? detail.type : undefined)),
    ["google.rpc.ErrorInfo"],
  );

  // A relayed error re-encodes the bytes it received without knowing their schema.
  const relayed = connectErrorFromStatus(
    serviceError(grpc.status.PERMISSION_DENIED, "locked", withDetails(statusDetailsFromError(received))),
  );
  assert.equal(relayed.findDetails(ErrorInfoSchema)[0]?.reason, "SUBJECT_LOCKED");
});

test("a corrupt details trailer keeps the code and message", () => {
  const received = connectErrorFromStatus(
    serviceError(grpc.status.UNAVAILABLE, "try later", withDetails(Buffer.from([0xff, 0xff, 0xff]))),
  );
  assert.equal(received.code, Code.Unavailable);
  assert.equal(received.rawMessage, "try later");
  assert.deepEqual(received.details, []);
});

test("a status outside Connect's codes becomes Unknown", () => {
  assert.equal(
    connectErrorFromStatus(serviceError(99 as grpc.status, "odd", new grpc.Metadata())).code,
    Code.Unknown,
  );
});

function withDetails(bytes: Buffer): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(statusDetailsKey, bytes);
  return metadata;
}
