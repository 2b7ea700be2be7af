import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorDomain } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { isReplicaUnavailable, withReplicaRetry } from "./replica-retry.ts";

const answered = (code: Code, reason: string, domain = errorDomain) =>
  new ConnectError("x", code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain } }]);

describe("replica retry", () => {
  it("retries only what a replica said it could not serve", () => {
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "STORE_UNAVAILABLE")), true);
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "DEPENDENCY_UNAVAILABLE")), true);
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "STORE_UNAVAILABLE", "other")), false);
    assert.equal(isReplicaUnavailable(answered(Code.PermissionDenied, "WRONG_CODE")), false);
    assert.equal(isReplicaUnavailable(new ConnectError("no connection", Code.Unavailable)), false);
    assert.equal(isReplicaUnavailable(new Error("x")), false);
  });

  it("sends the call again up to the given rounds, with the time left", async () => {
    const lefts: number[] = [];
    let calls = 0;
    const result = await withReplicaRetry(2, 5000, async (left) => {
      lefts.push(left);
      if (++calls < 3) throw answered(Code.Unavailable, "DEPENDENCY_UNAVAILABLE");
      return "ok";
    });
    assert.equal(result, "ok");
    assert.equal(calls, 3);
    assert.ok(lefts.every((l) => l > 0 && l <= 5000));
    let tries = 0;
    await assert.rejects(
      withReplicaRetry(2, 5000, async () => {
        tries++;
        throw answered(Code.Unavailable, "STORE_UNAVAILABLE");
      }),
      ConnectError,
    );
    assert.equal(tries, 3, "the first call and two more rounds");
    let once = 0;
    await assert.rejects(
      withReplicaRetry(2, 5000, async () => {
        once++;
        throw answered(Code.PermissionDenied, "WRONG_CODE");
      }),
    );
    assert.equal(once, 1, "an answer is never sent again");
  });
});
