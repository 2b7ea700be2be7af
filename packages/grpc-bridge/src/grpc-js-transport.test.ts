import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, Interceptor } from "@connectrpc/connect";
import {
  Code,
  ConnectError,
  createClient,
  decodeBinaryHeader,
  encodeBinaryHeader,
} from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { BadRequestSchema, ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { Health } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { StepUpService } from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { Method } from "@stepgate/api/gen/stepgate/v1/types_pb";
import { addService, type CallEndInfo } from "./add-service.ts";
import { callDeadlineKey, createGrpcJsTransport } from "./grpc-js-transport.ts";
import { peerAddressKey } from "./peer-address.ts";

// Handlers that wait for their signal report here, keyed by the token the test sent.
const aborted = new Map<string, (reason: unknown) => void>();
const errors: unknown[] = [];
const callEnds: CallEndInfo[] = [];
let lastContext: HandlerContext | undefined;

function waitForAbort(token: string): Promise<unknown> {
  return new Promise((resolve) => aborted.set(token, resolve));
}

function listen(server: grpc.Server, address = "127.0.0.1:0"): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (error, port) =>
      error ? reject(error) : resolve(port),
    );
  });
}

describe("createGrpcJsTransport with addService", () => {
  const server = new grpc.Server();
  let channel: grpc.Channel;
  let client: ReturnType<typeof createClient<typeof StepUpService>>;

  before(async () => {
    addService(
      server,
      StepUpService,
      {
        stepUp(request, ctx) {
          lastContext = ctx;
          ctx.responseHeader.set("stepgate-served-by", "test");
          ctx.responseTrailer.set("stepgate-audit-id", "a-1");
          return {
            outcome: {
              case: "challenge",
              value: {
                challengeId: `ch-${request.subject}-${request.context.purpose}`,
                methods: [Method.TOTP, Method.RECOVERY_CODE],
                requiredAcr: ctx.requestHeader.get("stepgate-caller") ?? "",
                expiresAt: timestampFromMs(1_700_000_000_000),
                attemptsRemaining: 3,
              },
            },
          };
        },
        verify(request) {
          if (request.action === "plain-error") {
            throw new Error("connection to postgres://stepgate:hunter2@db failed");
          }
          throw new ConnectError("challenge expired", Code.FailedPrecondition, { "stepgate-retry": "no" }, [
            {
              desc: ErrorInfoSchema,
              value: {
                reason: "CHALLENGE_EXPIRED",
                domain: "stepgate.dev",
                metadata: { challengeId: request.challengeId },
              },
            },
            {
              desc: BadRequestSchema,
              value: { fieldViolations: [{ field: "proof.totp_code", description: "must be 6 digits" }] },
            },
          ]);
        },
        async checkGrant(request, ctx) {
          await new Promise((resolve) => ctx.signal.addEventListener("abort", resolve, { once: true }));
          aborted.get(request.token)?.(ctx.signal.reason);
          return {};
        },
      },
      { onError: (error) => errors.push(error), onCallEnd: (info) => callEnds.push(info) },
    );
    const port = await listen(server);
    channel = new grpc.Channel(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {});
    client = createClient(StepUpService, createGrpcJsTransport({ channel }));
  });

  after(() => {
    channel.close();
    server.forceShutdown();
  });

  test("a unary call round-trips request and response fields", async () => {
    const response = await client.stepUp({ subject: "alice", sessionId: "s-1", context: { purpose: "pay" } });
    assert.equal(response.outcome.case, "challenge");
    const challenge = response.outcome.value;
    assert.equal(challenge.challengeId, "ch-alice-pay");
    assert.deepEqual(challenge.methods, [Method.TOTP, Method.RECOVERY_CODE]);
    assert.equal(challenge.attemptsRemaining, 3);
    assert.equal(challenge.expiresAt?.seconds, 1_700_000_000n);
  });

  test("request headers reach the handler, response headers and trailers reach the caller", async () => {
    let header: Headers | undefined;
    let trailer: Headers | undefined;
    const blob = new Uint8Array([0, 1, 2, 250, 255]);
    const response = await client.stepUp(
      { subject: "bob" },
      {
        headers: { "stepgate-caller": "billing", "stepgate-blob-bin": encodeBinaryHeader(blob) },
        timeoutMs: 5_000,
        onHeader: (value) => {
          header = value;
        },
        onTrailer: (value) => {
          trailer = value;
        },
      },
    );
    assert.equal(response.outcome.case === "challenge" && response.outcome.value.requiredAcr, "billing");
    assert.ok(lastContext);
    assert.equal(lastContext.requestHeader.get("stepgate-caller"), "billing");
    assert.deepEqual(decodeBinaryHeader(lastContext.requestHeader.get("stepgate-blob-bin") ?? ""), blob);
    assert.match(lastContext.values.get(peerAddressKey) ?? "", /^127\.0\.0\.1:\d+$/);
    assert.equal(lastContext.protocolName, "grpc");
    assert.match(lastContext.url, /^http:\/\/127\.0\.0\.1:\d+\/stepgate\.v1\.StepUpService\/StepUp$/);
    const remaining = lastContext.timeoutMs();
    assert.ok(remaining !== undefined && remaining > 0 && remaining <= 5_000, `timeoutMs ${remaining}`);
    assert.equal(header?.get("stepgate-served-by"), "test");
    assert.equal(trailer?.get("stepgate-audit-id"), "a-1");
    // The handler's signal also fires once the call completes, as in Connect's own servers.
    assert.equal(lastContext.signal.aborted, true);
  });

  test("a ConnectError keeps its code, message, metadata and details", async () => {
    const error = await client.verify({ challengeId: "ch-9" }).then(
      () => assert.fail("expected an error"),
      (reason: unknown) => reason,
    );
    assert.ok(error instanceof ConnectError);
    assert.equal(error.code, Code.FailedPrecondition);
    assert.equal(error.rawMessage, "challenge expired");
    assert.equal(error.metadata.get("stepgate-retry"), "no");
    const [info] = error.findDetails(ErrorInfoSchema);
    assert.equal(info?.reason, "CHALLENGE_EXPIRED");
    assert.equal(info?.domain, "stepgate.dev");
    assert.deepEqual(info?.metadata, { challengeId: "ch-9" });
    const [badRequest] = error.findDetails(BadRequestSchema);
    assert.equal(badRequest?.fieldViolations[0]?.field, "proof.totp_code");
    assert.equal(badRequest?.fieldViolations[0]?.description, "must be 6 digits");
  });

  test("any other thrown error is INTERNAL 'internal error' and reaches onError", async () => {
    errors.length = 0;
    await assert.rejects(client.verify({ action: "plain-error" }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Internal);
      assert.equal(error.rawMessage, "internal error");
      assert.doesNotMatch(JSON.stringify(error.metadata), /hunter2/);
      return true;
    });
    assert.equal(errors.length, 1);
    assert.match((errors[0] as Error).message, /hunter2/);
  });

  test("a method missing from the implementation is UNIMPLEMENTED", async () => {
    await assert.rejects(client.getJwks({}), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Unimplemented);
      assert.equal(error.rawMessage, "stepgate.v1.StepUpService.GetJwks is not implemented");
      return true;
    });
  });

  test("a deadline the handler exceeds is DEADLINE_EXCEEDED and aborts the handler's signal", async () => {
    const handlerAborted = waitForAbort("slow");
    callEnds.length = 0;
    await assert.rejects(client.checkGrant({ token: "slow" }, { timeoutMs: 100 }), (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.DeadlineExceeded);
      return true;
    });
    const reason = await handlerAborted;
    assert.ok(reason instanceof ConnectError);
    assert.equal(reason.code, Code.DeadlineExceeded);
    const ends = callEnds.filter((end) => end.method.name === "CheckGrant");
    assert.equal(ends.length, 1);
    assert.equal(ends[0]?.code, grpc.status.DEADLINE_EXCEEDED);
  });

  test("aborting the caller's signal cancels the call on both sides", async () => {
    const handlerAborted = waitForAbort("cancel-me");
    const controller = new AbortController();
    const call = client.checkGrant({ token: "cancel-me" }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(call, (error: unknown) => {
      assert.ok(error instanceof ConnectError);
      assert.equal(error.code, Code.Canceled);
      return true;
    });
    const reason = await handlerAborted;
    assert.ok(reason instanceof ConnectError);
    assert.equal(reason.code, Code.Canceled);
  });

  test("the default timeout applies to calls without one", async () => {
    const handlerAborted = waitForAbort("default-timeout");
    const withDefault = createClient(StepUpService, createGrpcJsTransport({ channel, defaultTimeoutMs: 50 }));
    await assert.rejects(withDefault.checkGrant({ token: "default-timeout" }), {
      code: Code.DeadlineExceeded,
    });
    await handlerAborted;
  });

  test("Connect interceptors run outermost first, see the request and the answer, and can refuse", async () => {
    const order: string[] = [];
    const seen: { caller?: string | null; header?: string | null; error?: Code } = {};
    const intercepted = createClient(
      StepUpService,
      createGrpcJsTransport({
        channel,
        interceptors: [
          (next) => async (req) => {
            order.push(`outer ${req.method.name}`);
            try {
              const res = await next(req);
              seen.header = res.header.get("stepgate-served-by");
              return res;
            } catch (error) {
              seen.error = ConnectError.from(error).code;
              throw error;
            }
          },
          (next) => async (req) => {
            order.push("inner");
            req.header.set("stepgate-caller", "intercepted");
            if (req.method.name === "GetJwks") throw new ConnectError("refused here", Code.PermissionDenied);
            return next(req);
          },
        ],
      }),
    );
    const response = await intercepted.stepUp({ subject: "carol" });
    assert.equal(response.outcome.case === "challenge" && response.outcome.value.requiredAcr, "intercepted");
    assert.equal(seen.header, "test", "the outer interceptor saw the response headers");
    await assert.rejects(
      intercepted.getJwks({}),
      (e: unknown) => ConnectError.from(e).code === Code.PermissionDenied,
    );
    assert.equal(seen.error, Code.PermissionDenied);
    await assert.rejects(
      intercepted.verify({ challengeId: "c" }),
      (e: unknown) => ConnectError.from(e).code === Code.FailedPrecondition,
    );
    assert.deepEqual(order, ["outer StepUp", "inner", "outer GetJwks", "inner", "outer Verify", "inner"]);
  });

  test("a default timeout per method, kept by every attempt of a call an interceptor sends twice", async () => {
    const deadlines: (number | undefined)[] = [];
    const left: number[] = [];
    const twice: Interceptor = (next) => async (req) => {
      deadlines.push(req.contextValues.get(callDeadlineKey));
      await next(req);
      await sleep(300);
      const res = await next(req);
      left.push(lastContext?.timeoutMs() ?? Number.NaN);
      return res;
    };
    const sent = Date.now();
    const resending = createClient(
      StepUpService,
      createGrpcJsTransport({
        channel,
        defaultTimeoutMs: (method) => (method.name === "StepUp" ? 2000 : undefined),
        interceptors: [twice],
      }),
    );
    await resending.stepUp({ subject: "dan" });
    const [deadline] = deadlines;
    assert.ok(deadline !== undefined && deadline >= sent + 2000 && deadline <= Date.now() + 2000);
    const [secondAttemptLeft = Number.NaN] = left;
    assert.ok(
      secondAttemptLeft <= 1750,
      `the second attempt had ${secondAttemptLeft} ms left, not a fresh 2000`,
    );
    // A method with no default timeout has no deadline.
    await assert.rejects(resending.getJwks({}), { code: Code.Unimplemented });
    assert.equal(deadlines[1], undefined);
  });

  test("streaming calls reject with Unimplemented", async () => {
    const transport = createGrpcJsTransport({ channel });
    await assert.rejects(
      transport.stream(Health.method.watch, undefined, undefined, undefined, (async function* () {})()),
      { code: Code.Unimplemented },
    );
  });
});

describe("createGrpcJsTransport without a server", () => {
  test("a connection failure keeps grpc-js's UNAVAILABLE code", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, "127.0.0.1", () => {
        const address = probe.address();
        probe.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
      });
    });
    const channel = new grpc.Channel(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {});
    try {
      const client = createClient(StepUpService, createGrpcJsTransport({ channel }));
      await assert.rejects(client.stepUp({}, { timeoutMs: 5_000 }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.Unavailable);
        return true;
      });
    } finally {
      channel.close();
    }
  });
});
