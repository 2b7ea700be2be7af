// Server streams through the bridge, both ways: a protobuf-es handler served by addService, read by
// a plain grpc-js client and by a Connect client over createGrpcJsTransport.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { addService } from "./add-service.ts";
import { createGrpcJsTransport } from "./grpc-js-transport.ts";

const { SERVING, NOT_SERVING } = HealthCheckResponse_ServingStatus;

describe("server streaming", () => {
  const server = new grpc.Server();
  let channel: grpc.Channel;
  let port = 0;
  const ends: grpc.status[] = [];
  // How each stream ended on the server: "done", "aborted" (the signal), or still open.
  const endings: string[] = [];
  before(async () => {
    addService(
      server,
      Health,
      {
        async *watch(request, ctx) {
          ctx.responseHeader.set("x-stream", "opened");
          ctx.responseTrailer.set("x-end", "trailer");
          if (request.service === "refuse") throw new ConnectError("no such service", Code.NotFound);
          if (request.service === "crash") throw new Error("secret detail");
          yield { status: SERVING };
          if (request.service === "forever") {
            while (!ctx.signal.aborted) {
              yield { status: NOT_SERVING };
              await new Promise((resolve) => setTimeout(resolve, 5));
            }
            endings.push("aborted");
            return;
          }
          yield { status: NOT_SERVING };
          endings.push("done");
        },
      },
      { onCallEnd: (info) => ends.push(info.code) },
    );
    port = await new Promise((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    channel = new grpc.Channel(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {});
  });
  after(() => {
    channel.close();
    server.forceShutdown();
  });
  const client = () => createClient(Health, createGrpcJsTransport({ channel }));

  test("yields every message in order, with the headers first and the trailers at the end", async () => {
    const seen: HealthCheckResponse_ServingStatus[] = [];
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    for await (const message of client().watch(
      { service: "" },
      { onHeader: (h) => (header = h), onTrailer: (t) => (trailer = t) },
    )) {
      seen.push(message.status);
    }
    assert.deepEqual(seen, [SERVING, NOT_SERVING]);
    assert.equal(header?.get("x-stream"), "opened");
    assert.equal(trailer?.get("x-end"), "trailer");
    assert.ok(endings.includes("done"));
  });

  test("a handler's ConnectError is the stream's status; an unexpected error is INTERNAL with nothing of it", async () => {
    await assert.rejects(
      async () => {
        for await (const _ of client().watch({ service: "refuse" })) assert.fail("no message expected");
      },
      (error: unknown) => error instanceof ConnectError && error.code === Code.NotFound,
    );
    await assert.rejects(
      async () => {
        for await (const _ of client().watch({ service: "crash" })) assert.fail("no message expected");
      },
      (error: unknown) =>
        error instanceof ConnectError && error.code === Code.Internal && !error.message.includes("secret"),
    );
  });

  test("breaking off the iteration cancels the call: the handler's signal aborts", async () => {
    let count = 0;
    for await (const _ of client().watch({ service: "forever" })) if (++count === 3) break;
    for (let i = 0; i < 100 && !endings.includes("aborted"); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(endings.includes("aborted"), "the handler saw its signal abort");
    assert.ok(ends.includes(grpc.status.CANCELLED));
  });

  test("aborting the client's signal ends the stream with CANCELLED for the caller", async () => {
    const abort = new AbortController();
    const messages = client().watch({ service: "forever" }, { signal: abort.signal });
    await assert.rejects(
      async () => {
        let count = 0;
        for await (const _ of messages) if (++count === 2) abort.abort();
      },
      (error: unknown) => error instanceof ConnectError && error.code === Code.Canceled,
    );
  });

  test("a deadline ends an open stream with DEADLINE_EXCEEDED", async () => {
    await assert.rejects(
      async () => {
        for await (const _ of client().watch({ service: "forever" }, { timeoutMs: 100 })) {
          // reads until the deadline
        }
      },
      (error: unknown) => error instanceof ConnectError && error.code === Code.DeadlineExceeded,
    );
  });

  test("client and bidirectional streams are still refused by the transport", async () => {
    const transport = createGrpcJsTransport({ channel });
    const method = { ...Health.method.watch, methodKind: "bidi_streaming" } as never;
    await assert.rejects(
      transport.stream(method, undefined, undefined, undefined, (async function* () {})(), undefined),
      (error: unknown) => error instanceof ConnectError && error.code === Code.Unimplemented,
    );
  });
});
