// The bounds on calls whose request has not arrived (server/pending-requests.ts) and the reset of
// streams answered early (server/http2-limits.ts), on a bare grpc-js server with one echo method.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import * as grpc from "@grpc/grpc-js";
import { resetAnsweredStreams } from "@stepgate/server/server/http2-limits";
import { boundPendingRequests, type PendingRequestLimits } from "@stepgate/server/server/pending-requests";
import { type BareOutcome, bareCall, connectBare, grpcFrame } from "./support/bare-grpc.ts";

const echo = "/test.Echo/Echo";
const bytes = (b: Buffer) => b;

/** A grpc-js server with the bounds and one unary method answering its request; resolves with its port. */
async function echoServer(limits: PendingRequestLimits): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server({ interceptors: [boundPendingRequests(limits)] });
  const answer: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => callback(null, call.request);
  server.register(echo, answer, bytes, bytes, "unary");
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  resetAnsweredStreams(server);
  return { port, server };
}

describe("calls waiting for their request", () => {
  const servers: grpc.Server[] = [];
  after(() => {
    for (const server of servers) server.forceShutdown();
  });
  const start = async (limits: PendingRequestLimits) => {
    const { port, server } = await echoServer(limits);
    servers.push(server);
    return connectBare(port);
  };

  it("ends a call whose request never ends with DEADLINE_EXCEEDED, then resets its stream", async () => {
    const session = await start({ timeoutMs: 200, maxPending: 100 });
    const [headersOnly, messageNoEnd, complete] = await Promise.all([
      bareCall(session, echo, { end: false }),
      bareCall(session, echo, { body: grpcFrame(Buffer.from("hi")), end: false }),
      bareCall(session, echo, { body: grpcFrame(Buffer.from("hi")) }),
    ]);
    session.destroy();
    for (const outcome of [headersOnly, messageNoEnd]) {
      assert.equal(outcome.status, grpc.status.DEADLINE_EXCEEDED);
      assert.equal(outcome.message, "request not received within 200 ms");
      // Closed by the server's RST_STREAM NO_ERROR, not left open until the session ends.
      assert.equal(outcome.rstCode, 0);
    }
    assert.equal(complete.status, grpc.status.OK);
  });

  it("past maxPending ends the call waiting longest with UNAVAILABLE, and serves the new one", async () => {
    const session = await start({ timeoutMs: 60_000, maxPending: 3 });
    const ended: BareOutcome[] = [];
    const waiting = [0, 1, 2].map(() => bareCall(session, echo, { end: false }));
    const [oldest, ...younger] = waiting;
    for (const call of younger) void call.then((outcome) => ended.push(outcome));
    const served = await bareCall(session, echo, { body: grpcFrame(Buffer.from("hi")) });
    assert.equal(served.status, grpc.status.OK);
    const evicted = await oldest;
    assert.equal(evicted?.status, grpc.status.UNAVAILABLE);
    assert.equal(evicted?.rstCode, 0);
    assert.deepEqual(ended, [], "the younger ones still wait");
    session.destroy();
    for (const outcome of await Promise.all(younger)) assert.equal(outcome.status, undefined);
  });

  it("answers a deadline that passes before the request with a reset stream too", async () => {
    const session = await start({ timeoutMs: 60_000, maxPending: 100 });
    const outcome = await bareCall(session, echo, { end: false, headers: { "grpc-timeout": "100m" } });
    session.destroy();
    assert.equal(outcome.status, grpc.status.DEADLINE_EXCEEDED);
    assert.equal(outcome.rstCode, 0);
  });
});
