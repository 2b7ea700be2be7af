// The failures grpc-js really produces when a call's connection is lost, from a bare HTTP/2 server
// that misbehaves on purpose (and a process killed with SIGKILL), classified by the client; and a
// call lost after its response headers, sent again with the same idempotency key.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import * as http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { after, describe, it } from "node:test";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { replicaTrailer } from "@stepgate/api";
import {
  CheckGrantRequestSchema,
  CheckGrantResponseSchema,
  GetJwksResponseSchema,
} from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { resendReason } from "./replica-retry.ts";
import { createStepgateClient, type StepgateClientOptions } from "./stepgate-client.ts";

type Answer = (stream: http2.ServerHttp2Stream, request: Buffer) => void;

const okHeaders = { ":status": 200, "content-type": "application/grpc" };
const NO_ERROR = http2.constants.NGHTTP2_NO_ERROR;
const INTERNAL_ERROR = http2.constants.NGHTTP2_INTERNAL_ERROR;
const REFUSED_STREAM = http2.constants.NGHTTP2_REFUSED_STREAM;

/** A gRPC length-prefixed message. */
function framed(bytes: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(bytes.byteLength, 1);
  return Buffer.concat([prefix, bytes]);
}

const jwksMessage = framed(
  toBinary(GetJwksResponseSchema, create(GetJwksResponseSchema, { jwksJson: "{}" })),
);

/** Response headers and the message, then `fault` once they have been written. */
const afterMessage =
  (fault: (stream: http2.ServerHttp2Stream) => void): Answer =>
  (stream) => {
    stream.respond(okHeaders, { waitForTrailers: true });
    stream.write(jwksMessage, () => fault(stream));
  };

/** An answer as a replica sends it: `grpc-status` and its name in the trailers (trailers-only). */
const replicaStatus =
  (code: number, message: string): Answer =>
  (stream) =>
    stream.respond(
      { ...okHeaders, "grpc-status": String(code), "grpc-message": message, [replicaTrailer]: "fake-1" },
      { endStream: true },
    );

/** A bare HTTP/2 server on loopback that answers every call with `answer()`'s pick. */
async function fakeReplica(answer: () => Answer): Promise<{ address: string; close(): void }> {
  const server = http2.createServer();
  server.on("session", (session) => session.on("error", () => {}));
  server.on("stream", (stream) => {
    stream.on("error", () => {});
    const chunks: Buffer[] = [];
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("end", () => answer()(stream, Buffer.concat(chunks)));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => server.close(),
  };
}

const clientOf = (target: string, options: Partial<StepgateClientOptions> = {}) =>
  createStepgateClient({
    target,
    caller: "payments",
    replicaRetryRounds: 0,
    revocationFeed: { enabled: false },
    ...options,
  });

/** The error a GetJwks call fails with against a server answering with `answer`. */
async function failureOf(answer: Answer): Promise<ConnectError> {
  const replica = await fakeReplica(() => answer);
  const client = clientOf(replica.address);
  try {
    await client.stepUp.getJwks({}, { timeoutMs: 3000 });
    assert.fail("the call succeeded");
  } catch (error) {
    return ConnectError.from(error);
  } finally {
    client.close();
    replica.close();
  }
}

/** A child process serving one HTTP/2 port that sends headers and a message and never the status. */
async function killableReplica(): Promise<{ address: string; pid: number; held: Promise<void> }> {
  const script = `
    const http2 = require("node:http2");
    const message = Buffer.from(${JSON.stringify([...jwksMessage])});
    const server = http2.createServer();
    server.on("stream", (s) => { s.resume(); s.on("end", () => {
      s.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
      s.write(message, () => console.log("held"));
    }); });
    server.listen(0, "127.0.0.1", () => console.log("port " + server.address().port));`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = child.stdout.setEncoding("utf8");
  const [first] = (await once(lines, "data")) as [string];
  const port = /port (\d+)/.exec(first)?.[1];
  assert.ok(port && child.pid, `the child serves: ${first}`);
  const held = once(lines, "data").then(() => {});
  return { address: `127.0.0.1:${port}`, pid: child.pid, held };
}

describe("a call lost with its connection", () => {
  const lost: [string, Answer][] = [
    ["after the message: the connection closes (FIN)", afterMessage((s) => s.session?.socket.destroy())],
    [
      "after the message: the connection is reset (RST)",
      afterMessage((s) => s.session?.socket.resetAndDestroy()),
    ],
    ["after the message: GOAWAY with an error code", afterMessage((s) => s.session?.goaway(INTERNAL_ERROR))],
    ["after the message: RST_STREAM INTERNAL_ERROR", afterMessage((s) => s.close(INTERNAL_ERROR))],
    ["after the message: the stream ends without a status", afterMessage((s) => s.close(NO_ERROR))],
    ["before any header: the connection closes", (s) => s.session?.socket.destroy()],
    ["before any header: RST_STREAM REFUSED_STREAM", (s) => s.close(REFUSED_STREAM)],
    ["an HTTP 503 from a proxy", (s) => s.respond({ ":status": 503 }, { endStream: true })],
  ];
  for (const [how, answer] of lost) {
    it(`${how}: sent again`, async (t) => {
      const error = await failureOf(answer);
      t.diagnostic(`${error.code} ${error.rawMessage}`);
      assert.equal(resendReason(error), "lost-in-transport");
    });
  }

  it("the replica is killed (SIGKILL) after sending headers and the message: sent again", async (t) => {
    const replica = await killableReplica();
    const client = clientOf(replica.address);
    try {
      const call = client.stepUp.getJwks({}, { timeoutMs: 5000 }).catch((e: unknown) => ConnectError.from(e));
      await replica.held;
      process.kill(replica.pid, "SIGKILL");
      const error = await call;
      assert.ok(error instanceof ConnectError, "the call failed");
      t.diagnostic(`${error.code} ${error.rawMessage}`);
      assert.equal(resendReason(error), "lost-in-transport");
    } finally {
      client.close();
    }
  });

  it("no replica listens: sent again", async () => {
    const replica = await fakeReplica(() => replicaStatus(0, ""));
    replica.close();
    const client = clientOf(replica.address, { retry: { maxAttempts: 1 } });
    const error = await client.stepUp.getJwks({}, { timeoutMs: 2000 }).then(
      () => assert.fail("no server answered"),
      (e: unknown) => ConnectError.from(e),
    );
    client.close();
    assert.equal(resendReason(error), "lost-in-transport");
  });

  it("what a replica answered stays its answer", async () => {
    for (const code of [13, 14, 7]) {
      const error = await failureOf(replicaStatus(code, "answered"));
      assert.equal(resendReason(error), undefined, `status ${code} from a replica`);
    }
  });
});

describe("a call lost after its response headers, through the client", () => {
  const keys: { replica: string; key: string }[] = [];
  let lostOne = false;
  const answer =
    (name: string): (() => Answer) =>
    () =>
    (stream, request) => {
      keys.push({
        replica: name,
        key: fromBinary(CheckGrantRequestSchema, request.subarray(5)).idempotencyKey,
      });
      if (!lostOne) {
        lostOne = true;
        stream.respond(okHeaders, { waitForTrailers: true });
        stream.write(framed(toBinary(CheckGrantResponseSchema, create(CheckGrantResponseSchema))), () =>
          stream.session?.socket.destroy(),
        );
        return;
      }
      stream.respond(okHeaders, { waitForTrailers: true });
      stream.once("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", [replicaTrailer]: name }));
      stream.end(
        framed(toBinary(CheckGrantResponseSchema, create(CheckGrantResponseSchema, { subject: "alice" }))),
      );
    };
  const replicas: { address: string; close(): void }[] = [];
  after(() => {
    for (const r of replicas) r.close();
  });

  it("is sent again with the same idempotency key, filled in by the client, and answered", async () => {
    replicas.push(await fakeReplica(answer("a")), await fakeReplica(answer("b")));
    const client = createStepgateClient({
      target: `ipv4:${replicas.map((r) => r.address).join(",")}`,
      caller: "payments",
      // These fake replicas answer every call as CheckGrant: no feed stream to them.
      revocationFeed: { enabled: false },
    });
    const request = { token: "t", action: "secrets.read" };
    try {
      let answeredBy: string | null = null;
      const response = await client.stepUp.checkGrant(request, {
        onTrailer: (trailer) => {
          answeredBy = trailer.get(replicaTrailer);
        },
      });
      assert.equal(response.subject, "alice");
      assert.ok(answeredBy, "a replica answered");
      assert.equal(keys.length, 2, "the lost call and its resend");
      const [first, second] = keys;
      assert.ok(first && second);
      assert.match(first.key, /^[\x21-\x7e]{8,128}$/);
      assert.equal(second.key, first.key);
      assert.equal(Object.hasOwn(request, "idempotencyKey"), false);
    } finally {
      client.close();
    }
  });
});
