// What Stepgate reaches into grpc-js for, where grpc-js offers no public hook. A grpc-js upgrade that
// moves any of it fails here, loudly, instead of silently turning a protection off.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { grpcHttp2Servers } from "./grpc-js-internals.ts";

const identity = (b: Buffer) => b;
const method = {
  path: "/internals.v1.Probe/Echo",
  requestStream: false,
  responseStream: false,
  requestSerialize: identity,
  requestDeserialize: identity,
  responseSerialize: identity,
  responseDeserialize: identity,
} as const;

describe("grpc-js internals Stepgate relies on", () => {
  it("a bound server's HTTP/2 servers (the server's ping policy, connection throttle, TLS refusals and limits)", async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    try {
      assert.ok(port > 0);
      const servers = grpcHttp2Servers(server);
      assert.equal(servers.length, 1, "grpc-js keeps its HTTP/2 servers in `http2Servers`");
      assert.equal(typeof servers[0]?.on, "function");
    } finally {
      server.forceShutdown();
    }
  });

  it("the handler lookup and the innermost call's sendStatus (the server's call accounting)", async () => {
    assert.equal(
      typeof (grpc.Server.prototype as unknown as { _retrieveHandler?: unknown })._retrieveHandler,
      "function",
      "grpc-js looks handlers up with `_retrieveHandler`",
    );
    let seen: { intercepting: boolean; sendStatus: string } | undefined;
    const server = new grpc.Server({
      interceptors: [
        (_descriptor, call) => {
          seen = {
            intercepting: call instanceof grpc.ServerInterceptingCall,
            sendStatus: typeof call.sendStatus,
          };
          return new grpc.ServerInterceptingCall(call);
        },
      ],
    });
    server.addService(
      { echo: method },
      {
        echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) =>
          done(null, call.request),
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    try {
      const answer = await new Promise<Buffer>((resolve, reject) =>
        client.makeUnaryRequest(method.path, identity, identity, Buffer.from("hi"), (e, r) =>
          e || !r ? reject(e) : resolve(r),
        ),
      );
      assert.equal(answer.toString(), "hi");
      assert.deepEqual(
        seen,
        { intercepting: false, sendStatus: "function" },
        "the first interceptor gets the innermost call",
      );
    } finally {
      client.close();
      server.forceShutdown();
    }
  });
});
