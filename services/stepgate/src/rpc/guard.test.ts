import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError, createHandlerContext, type HandlerContext } from "@connectrpc/connect";
import { StepUpService } from "@stepgate/api";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import { guard, replicaTrailer } from "./guard.ts";

function context(timeoutMs?: number): HandlerContext {
  return createHandlerContext({
    service: StepUpService,
    method: StepUpService.method.getJwks,
    protocolName: "grpc",
    requestMethod: "POST",
    url: "http://127.0.0.1/stepgate.v1.StepUpService/GetJwks",
    ...(timeoutMs === undefined ? {} : { timeoutMs }),
  });
}

describe("guard", () => {
  const ends: number[] = [];
  let runs = 0;
  const hooks = { replicaId: "r-7", onCallEnd: (info: { code: number }) => void ends.push(info.code) };

  it("names the replica in a trailer, never a response header, whether the call succeeds or fails", async () => {
    const guarded = guard(
      StepUpService,
      {
        getJwks: async () => ({ jwksJson: "{}" }),
        endSession: async () => {
          throw new DependencyUnavailableError("postgresql", "STORE_UNAVAILABLE", 100);
        },
      } as never,
      hooks,
    );
    const ok = context();
    await guarded.getJwks({} as never, ok);
    assert.equal(ok.responseTrailer.get(replicaTrailer), "r-7");
    assert.deepEqual([...ok.responseHeader.keys()], []);
    const failed = context();
    await assert.rejects(async () => guarded.endSession({} as never, failed), { code: Code.Unavailable });
    assert.equal(failed.responseTrailer.get(replicaTrailer), "r-7");
    assert.deepEqual([...failed.responseHeader.keys()], []);
  });

  it("does not start a handler whose call's deadline has passed", async () => {
    ends.length = 0;
    runs = 0;
    const guarded = guard(
      StepUpService,
      {
        getJwks: async () => {
          runs += 1;
          return { jwksJson: "{}" };
        },
      } as never,
      hooks,
    );
    // Connect aborts the signal of a context whose time is up (timeoutMs 0) as it is made.
    await assert.rejects(
      async () => guarded.getJwks({} as never, context(0)),
      (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, Code.DeadlineExceeded);
        return true;
      },
    );
    assert.equal(runs, 0);
    assert.deepEqual(ends, [Code.DeadlineExceeded]);
    await guarded.getJwks({} as never, context(5000));
    assert.equal(runs, 1);
  });
});
