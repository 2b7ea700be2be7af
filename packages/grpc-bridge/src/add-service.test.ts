import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { BadRequestSchema, ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { StatusSchema } from "@stepgate/api/gen/google/rpc/status_pb";
import {
  Health,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@stepgate/api/gen/grpc/health/v1/health_pb";
import {
  EndSessionRequestSchema,
  EndSessionResponseSchema,
  StepUpService,
  VerifyRequestSchema,
  VerifyResponseSchema,
} from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { addService, type CallEndInfo } from "./add-service.ts";

function listen(server: grpc.Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    );
  });
}

// Written by hand, with protobuf-es only, so this client shares no code with the bridge.
function rawMethod<I extends DescMessage, O extends DescMessage>(
  path: string,
  input: I,
  output: O,
  responseStream = false,
): grpc.MethodDefinition<MessageShape<I>, MessageShape<O>> {
  return {
    path,
    requestStream: false,
    responseStream,
    requestSerialize: (value) => Buffer.from(toBinary(input, value)),
    requestDeserialize: (bytes) => fromBinary(input, bytes),
    responseSerialize: (value) => Buffer.from(toBinary(output, value)),
    responseDeserialize: (bytes) => fromBinary(output, bytes),
  };
}

const RawClient = grpc.makeGenericClientConstructor(
  {
    Verify: rawMethod("/stepgate.v1.StepUpService/Verify", VerifyRequestSchema, VerifyResponseSchema),
    EndSession: rawMethod(
      "/stepgate.v1.StepUpService/EndSession",
      EndSessionRequestSchema,
      EndSessionResponseSchema,
    ),
    Check: rawMethod("/grpc.health.v1.Health/Check", HealthCheckRequestSchema, HealthCheckResponseSchema),
    Watch: rawMethod(
      "/grpc.health.v1.Health/Watch",
      HealthCheckRequestSchema,
      HealthCheckResponseSchema,
      true,
    ),
  },
  "RawClient",
);

type Unary = (request: unknown, callback: (error: grpc.ServiceError | null, value?: unknown) => void) => void;

function callRaw(client: grpc.Client, name: string, request: unknown): Promise<grpc.ServiceError | unknown> {
  const method = (client as unknown as Record<string, Unary>)[name];
  assert.ok(method);
  return new Promise((resolve) => method.call(client, request, (error, value) => resolve(error ?? value)));
}

function isServiceError(value: unknown): value is grpc.ServiceError {
  return value instanceof Error && "code" in value && "metadata" in value;
}

describe("addService", () => {
  const server = new grpc.Server();
  const errors: { error: unknown; method: string }[] = [];
  const callEnds: CallEndInfo[] = [];
  let client: grpc.Client;

  before(async () => {
    addService(
      server,
      StepUpService,
      {
        verify() {
          throw new ConnectError("wrong code", Code.InvalidArgument, undefined, [
            { desc: ErrorInfoSchema, value: { reason: "WRONG_CODE", domain: "stepgate.dev" } },
            { desc: BadRequestSchema, value: { fieldViolations: [{ field: "proof" }] } },
          ]);
        },
        endSession(request, ctx) {
          if (request.subject === "bad-trailer") {
            ctx.responseTrailer.set("stepgate-note", "caf\u00e9");
            return {};
          }
          throw new Error("secret: hunter2");
        },
      },
      {
        onError: (error, { method }) => errors.push({ error, method: method.name }),
        onCallEnd: (info) => {
          callEnds.push(info);
          throw new Error("a broken metrics hook");
        },
      },
    );
    addService(server, Health, {
      // Returns a message rather than an init shape: both are accepted.
      check: () => create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
    });
    const port = await listen(server);
    client = new RawClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  });

  after(() => {
    client.close();
    server.forceShutdown();
  });

  test("a plain grpc-js client can decode grpc-status-details-bin as google.rpc.Status", async () => {
    const error = await callRaw(client, "Verify", create(VerifyRequestSchema));
    assert.ok(isServiceError(error));
    assert.equal(error.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(error.details, "wrong code");
    const [bytes] = error.metadata.get("grpc-status-details-bin");
    assert.ok(bytes instanceof Buffer);
    const status = fromBinary(StatusSchema, bytes);
    assert.equal(status.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(status.message, "wrong code");
    assert.deepEqual(
      status.details.map((any) => any.typeUrl),
      ["type.googleapis.com/google.rpc.ErrorInfo", "type.googleapis.com/google.rpc.BadRequest"],
    );
    const [errorInfo] = status.details;
    assert.ok(errorInfo);
    assert.equal(anyUnpack(errorInfo, ErrorInfoSchema)?.reason, "WRONG_CODE");
  });

  test("a plain thrown error is INTERNAL without details, and onError gets the original", async () => {
    errors.length = 0;
    const error = await callRaw(client, "EndSession", create(EndSessionRequestSchema));
    assert.ok(isServiceError(error));
    assert.equal(error.code, grpc.status.INTERNAL);
    assert.equal(error.details, "internal error");
    assert.deepEqual(error.metadata.get("grpc-status-details-bin"), []);
    const [reported] = errors;
    assert.equal(errors.length, 1);
    assert.equal(reported?.method, "EndSession");
    assert.ok(reported.error instanceof Error);
    assert.equal(reported.error.message, "secret: hunter2");
  });

  test("a trailer gRPC cannot carry is a server bug: INTERNAL and onError", async () => {
    errors.length = 0;
    const error = await callRaw(
      client,
      "EndSession",
      create(EndSessionRequestSchema, { subject: "bad-trailer" }),
    );
    assert.ok(isServiceError(error));
    assert.equal(error.code, grpc.status.INTERNAL);
    assert.equal(error.details, "internal error");
    assert.equal(errors.length, 1);
  });

  test("a handler may return a message instead of an init shape", async () => {
    const response = await callRaw(client, "Check", create(HealthCheckRequestSchema));
    assert.deepEqual(
      response,
      create(HealthCheckResponseSchema, { status: HealthCheckResponse_ServingStatus.SERVING }),
    );
  });

  test("an unimplemented streaming method answers UNIMPLEMENTED", async () => {
    const watch = (
      client as unknown as Record<string, (request: unknown) => grpc.ClientReadableStream<unknown>>
    ).Watch;
    assert.ok(watch);
    const stream = watch.call(client, create(HealthCheckRequestSchema));
    const error = await new Promise((resolve) => stream.on("error", resolve));
    assert.ok(isServiceError(error));
    assert.equal(error.code, grpc.status.UNIMPLEMENTED);
    assert.equal(error.details, "grpc.health.v1.Health.Watch is not implemented");
  });

  test("onCallEnd runs once per call with the status sent, and a throwing hook changes nothing", async () => {
    callEnds.length = 0;
    await callRaw(client, "Verify", create(VerifyRequestSchema));
    await callRaw(client, "EndSession", create(EndSessionRequestSchema));
    // The server-side "cancelled" event comes a tick after the status; let it pass.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      callEnds.map((end) => [end.service.typeName, end.method.name, end.code]),
      [
        ["stepgate.v1.StepUpService", "Verify", grpc.status.INVALID_ARGUMENT],
        ["stepgate.v1.StepUpService", "EndSession", grpc.status.INTERNAL],
      ],
    );
    for (const end of callEnds) {
      assert.ok(end.durationMs >= 0 && end.durationMs < 5_000);
    }
  });

  test("implementing a streaming method fails at registration", () => {
    assert.throws(
      () => addService(new grpc.Server(), Health, { watch: async function* () {} }),
      /server_streaming method grpc\.health\.v1\.Health\.Watch is not supported/,
    );
  });
});
