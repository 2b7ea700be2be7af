import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { StepUpService } from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { addService } from "./add-service.ts";
import { createGrpcJsTransport } from "./grpc-js-transport.ts";
import { peerAddressKey } from "./peer-address.ts";

describe("addService with Connect interceptors", () => {
  const server = new grpc.Server();
  const order: string[] = [];
  const seen: { peer?: string | undefined; error?: Code; handlerCaller?: string | null } = {};
  let channel: grpc.Channel;
  let client: ReturnType<typeof createClient<typeof StepUpService>>;

  const outer: Interceptor = (next) => async (req) => {
    order.push(`outer ${req.method.name}`);
    seen.peer = req.contextValues.get(peerAddressKey);
    try {
      const res = await next(req);
      res.trailer.set("stepgate-intercepted", "yes");
      return res;
    } catch (error) {
      seen.error = ConnectError.from(error).code;
      throw error;
    }
  };
  const inner: Interceptor = (next) => async (req) => {
    order.push("inner");
    if (req.header.get("stepgate-caller") === "blocked")
      throw new ConnectError("not you", Code.PermissionDenied);
    req.header.set("stepgate-seen-by", "inner");
    // A replaced request object still carries the call's context values on.
    return next({ ...req });
  };

  before(async () => {
    addService(
      server,
      StepUpService,
      {
        stepUp(request, ctx) {
          order.push("handler");
          seen.handlerCaller = ctx.requestHeader.get("stepgate-seen-by");
          return { outcome: { case: "challenge", value: { challengeId: `ch-${request.subject}` } } };
        },
        verify() {
          throw new ConnectError("challenge expired", Code.FailedPrecondition);
        },
      },
      { interceptors: [outer, inner] },
    );
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    channel = new grpc.Channel(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {});
    client = createClient(StepUpService, createGrpcJsTransport({ channel }));
  });

  after(() => {
    channel.close();
    server.forceShutdown();
  });

  test("run outermost first around the handler, with its context, and what they set on the answer is sent", async () => {
    let trailer: Headers | undefined;
    const res = await client.stepUp({ subject: "dana" }, { onTrailer: (t) => (trailer = t) });
    assert.equal(res.outcome.case === "challenge" && res.outcome.value.challengeId, "ch-dana");
    assert.deepEqual(order.splice(0), ["outer StepUp", "inner", "handler"]);
    assert.equal(seen.handlerCaller, "inner", "a request header an interceptor set reaches the handler");
    assert.match(seen.peer ?? "", /^127\.0\.0\.1:\d+$/);
    assert.equal(trailer?.get("stepgate-intercepted"), "yes");
  });

  test("a refusal from an interceptor is the call's status, and the handler never runs", async () => {
    await assert.rejects(
      client.stepUp({ subject: "eve" }, { headers: { "stepgate-caller": "blocked" } }),
      (e: unknown) =>
        ConnectError.from(e).code === Code.PermissionDenied && ConnectError.from(e).rawMessage === "not you",
    );
    assert.deepEqual(order.splice(0), ["outer StepUp", "inner"]);
    assert.equal(seen.error, Code.PermissionDenied);
  });

  test("a handler's error passes back through the interceptors unchanged", async () => {
    await assert.rejects(
      client.verify({ challengeId: "c" }),
      (e: unknown) => ConnectError.from(e).code === Code.FailedPrecondition,
    );
    assert.equal(seen.error, Code.FailedPrecondition);
    // Methods not implemented stay UNIMPLEMENTED, outside the interceptors.
    await assert.rejects(
      client.getJwks({}),
      (e: unknown) => ConnectError.from(e).code === Code.Unimplemented,
    );
    assert.deepEqual(order.splice(0), ["outer Verify", "inner"]);
  });
});
