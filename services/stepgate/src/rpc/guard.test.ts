import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, type HandlerContext } from "@connectrpc/connect";
import { StepUpService } from "@stepgate/api";
import { type UnaryHandlerFn, withServerInterceptors } from "@stepgate/grpc-bridge";
import { handlerContextFor } from "@stepgate/testkit/handler-context";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { guard, replicaTrailer } from "./guard.ts";

function context(timeoutMs?: number): HandlerContext {
  return handlerContextFor(StepUpService.method.getJwks, timeoutMs === undefined ? {} : { timeoutMs });
}

type Hooks = Parameters<typeof guard>[0];

// The handler behind the guard, as addService runs it (the same chain, without the network).
function guarded(method: keyof typeof StepUpService.method, fn: UnaryHandlerFn, hooks: Hooks) {
  return withServerInterceptors(StepUpService.method[method], fn, [guard(hooks)]);
}

describe("guard", () => {
  const ends: number[] = [];
  let runs = 0;
  const hooks = { replicaId: "r-7", onCallEnd: (info: { code: number }) => void ends.push(info.code) };

  it("names the replica in a trailer, never a response header, whether the call succeeds or fails", async () => {
    const getJwks = guarded("getJwks", async () => ({ jwksJson: "{}" }), hooks);
    const endSession = guarded(
      "endSession",
      async () => {
        throw new DependencyUnavailableError("postgresql", "STORE_UNAVAILABLE", 100);
      },
      hooks,
    );
    const ok = context();
    await getJwks({}, ok);
    assert.equal(ok.responseTrailer.get(replicaTrailer), "r-7");
    assert.deepEqual([...ok.responseHeader.keys()], []);
    const failed = context();
    await assert.rejects(async () => endSession({}, failed), { code: Code.Unavailable });
    assert.equal(failed.responseTrailer.get(replicaTrailer), "r-7");
    assert.deepEqual([...failed.responseHeader.keys()], []);
  });

  it("does not start a handler whose call's deadline has passed", async () => {
    ends.length = 0;
    runs = 0;
    const getJwks = guarded(
      "getJwks",
      async () => {
        runs += 1;
        return { jwksJson: "{}" };
      },
      hooks,
    );
    // Connect aborts the signal of a context whose time is up (timeoutMs 0) as it is made.
    await assert.rejects(
      async () => getJwks({}, context(0)),
      (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.DeadlineExceeded);
        return true;
      },
    );
    assert.equal(runs, 0);
    assert.deepEqual(ends, [Code.DeadlineExceeded]);
    await getJwks({}, context(5000));
    assert.equal(runs, 1);
  });
});
