import assert from "node:assert/strict";
import * as http2 from "node:http2";
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
  GetJwksRequestSchema,
  StepUpRequestSchema,
  StepUpResponseSchema,
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
    StepUp: rawMethod("/stepgate.v1.StepUpService/StepUp", StepUpRequestSchema, StepUpResponseSchema),
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

/** What a plain grpc-js client saw of a unary call, in order: "metadata" (response headers), "status". */
function callRawEvents(
  client: grpc.Client,
  name: string,
  request: unknown,
): Promise<{ events: string[]; status: grpc.StatusObject }> {
  const method = (client as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>)[name];
  assert.ok(method);
  const events: string[] = [];
  return new Promise((resolve) => {
    const call = method.call(client, request, () => {});
    call.on("metadata", () => events.push("metadata"));
    call.on("status", (status: grpc.StatusObject) => {
      events.push("status");
      resolve({ events, status });
    });
  });
}

/** One HTTP/2 HEADERS frame the server sent, and whether it ended the stream. */
interface HeadersFrame {
  headers: http2.IncomingHttpHeaders;
  endStream: boolean;
}

/**
 * A unary gRPC call over bare HTTP/2, with no gRPC library in the way: the request's headers and
 * its one message are sent together. Resolves with every HEADERS frame the server sent and the
 * bytes of its DATA frames.
 */
function rawHttp2Call(
  port: number,
  path: string,
  message: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ frames: HeadersFrame[]; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on("error", reject);
    const frames: HeadersFrame[] = [];
    const chunks: Buffer[] = [];
    const endStream = (flags: number) => (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    const stream = session.request({
      ":method": "POST",
      ":path": path,
      "content-type": "application/grpc",
      te: "trailers",
      ...headers,
    });
    stream.on("response", (h, flags) => frames.push({ headers: h, endStream: endStream(flags) }));
    stream.on("trailers", (h, flags) => frames.push({ headers: h, endStream: endStream(flags) }));
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      resolve({ frames, data: Buffer.concat(chunks) });
    });
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(message.byteLength, 1);
    stream.end(Buffer.concat([prefix, message]));
  });
}

describe("addService", () => {
  const server = new grpc.Server();
  const errors: { error: unknown; method: string }[] = [];
  const callEnds: CallEndInfo[] = [];
  let getJwksRuns = 0;
  let client: grpc.Client;
  let port: number;

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
        stepUp(request, ctx) {
          ctx.responseHeader.set("stepgate-served-by", "here");
          ctx.responseTrailer.set("stepgate-replica", "r-1");
          if (request.subject === "ok") return {};
          throw new ConnectError("store down", Code.Unavailable, { "stepgate-note": "retry" });
        },
        getJwks() {
          getJwksRuns += 1;
          return { jwksJson: "{}" };
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
    port = await listen(server);
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

  test("a failed call sends no response headers before its status: its headers travel as trailers", async () => {
    // Through grpc-js: no "metadata" event, so its retry policy could still move the call elsewhere.
    const failed = await callRawEvents(client, "StepUp", create(StepUpRequestSchema));
    assert.deepEqual(failed.events, ["status"]);
    assert.equal(failed.status.code, grpc.status.UNAVAILABLE);
    assert.equal(failed.status.details, "store down");
    assert.deepEqual(failed.status.metadata.get("stepgate-replica"), ["r-1"]);
    assert.deepEqual(failed.status.metadata.get("stepgate-served-by"), ["here"]);
    assert.deepEqual(failed.status.metadata.get("stepgate-note"), ["retry"]);
    // On the wire: one HEADERS frame, which ends the stream and carries the status (trailers-only).
    const raw = await rawHttp2Call(port, "/stepgate.v1.StepUpService/StepUp", new Uint8Array());
    assert.equal(raw.frames.length, 1);
    assert.equal(raw.frames[0]?.endStream, true);
    assert.equal(raw.frames[0]?.headers["grpc-status"], String(grpc.status.UNAVAILABLE));
    assert.equal(raw.frames[0]?.headers["stepgate-replica"], "r-1");
    assert.equal(raw.data.byteLength, 0);
    // A success still sends the handler's headers first, then the message, then the trailers.
    const ok = await callRawEvents(client, "StepUp", create(StepUpRequestSchema, { subject: "ok" }));
    assert.deepEqual(ok.events, ["metadata", "status"]);
    assert.equal(ok.status.code, grpc.status.OK);
    assert.deepEqual(ok.status.metadata.get("stepgate-replica"), ["r-1"]);
  });

  test("a call whose deadline passed before its handler could start is DEADLINE_EXCEEDED, not run", async () => {
    callEnds.length = 0;
    getJwksRuns = 0;
    const path = "/stepgate.v1.StepUpService/GetJwks";
    const message = toBinary(GetJwksRequestSchema, create(GetJwksRequestSchema));
    // grpc-timeout 0: the deadline is the moment the headers arrive, past by the time the handler would start.
    const late = await rawHttp2Call(port, path, message, { "grpc-timeout": "0n" });
    const status = late.frames.at(-1)?.headers["grpc-status"];
    assert.equal(status, String(grpc.status.DEADLINE_EXCEEDED));
    assert.equal(getJwksRuns, 0, "the handler did not run");
    // It was the bridge that refused it (grpc-js's own deadline timer would not report here).
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(
      callEnds.map((end) => [end.method.name, end.code]),
      [["GetJwks", grpc.status.DEADLINE_EXCEEDED]],
    );
    // The same call with time to spare runs.
    const inTime = await rawHttp2Call(port, path, message, { "grpc-timeout": "5S" });
    assert.equal(inTime.frames.at(-1)?.headers["grpc-status"], String(grpc.status.OK));
    assert.equal(getJwksRuns, 1);
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
});
