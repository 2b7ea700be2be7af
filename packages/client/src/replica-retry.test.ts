import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorDomain, replicaTrailer } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import {
  isLostInTransport,
  isReplicaUnavailable,
  type ReplicaRetryPolicy,
  resendReason,
  withReplicaRetry,
} from "./replica-retry.ts";
import { ResendThrottle } from "./resend-throttle.ts";

const answered = (code: Code, reason: string, domain = errorDomain) =>
  new ConnectError("x", code, undefined, [{ desc: ErrorInfoSchema, value: { reason, domain } }]);

/** A status as grpc-js hands it over (connectErrorFromStatus marks those as wire errors). */
function fromGrpcJs(code: Code, message: string, metadata: Record<string, string> = {}): ConnectError {
  const error = new ConnectError(message, code, metadata);
  error.isWireError = true;
  return error;
}

const dropped = () =>
  fromGrpcJs(Code.Unavailable, "Connection dropped", { "content-type": "application/grpc" });

const policy = (rounds: number, throttle = new ResendThrottle(100, 0.1)): ReplicaRetryPolicy => ({
  rounds,
  backoffMs: 1,
  throttle,
});

describe("replica retry: which failures are sent again", () => {
  it("retries what a replica said it could not serve", () => {
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "STORE_UNAVAILABLE")), true);
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "DEPENDENCY_UNAVAILABLE")), true);
    assert.equal(isReplicaUnavailable(answered(Code.Unavailable, "STORE_UNAVAILABLE", "other")), false);
    assert.equal(isReplicaUnavailable(answered(Code.PermissionDenied, "WRONG_CODE")), false);
    assert.equal(isReplicaUnavailable(new ConnectError("no connection", Code.Unavailable)), false);
    assert.equal(isReplicaUnavailable(new Error("x")), false);
  });

  it("retries UNAVAILABLE and INTERNAL that no replica sent: the call was lost on the way", () => {
    assert.equal(isLostInTransport(dropped()), true);
    assert.equal(isLostInTransport(fromGrpcJs(Code.Unavailable, "read ECONNRESET")), true);
    assert.equal(isLostInTransport(fromGrpcJs(Code.Unavailable, "Received HTTP status code 503")), true);
    assert.equal(
      isLostInTransport(fromGrpcJs(Code.Internal, "Received RST_STREAM with code 2 (Internal server error)")),
      true,
    );
  });

  it("keeps what a replica answered, and what never left the client", () => {
    const replica = { [replicaTrailer]: "replica-1" };
    assert.equal(isLostInTransport(fromGrpcJs(Code.Unavailable, "draining", replica)), false);
    assert.equal(isLostInTransport(fromGrpcJs(Code.Internal, "internal error", replica)), false);
    const stored = answered(Code.Unavailable, "STORE_UNAVAILABLE");
    stored.isWireError = true;
    assert.equal(isLostInTransport(stored), false, "a replica's own answer (ErrorInfo)");
    for (const code of [Code.DeadlineExceeded, Code.Canceled, Code.Unknown, Code.ResourceExhausted]) {
      assert.equal(isLostInTransport(fromGrpcJs(code, "x")), false, Code[code]);
    }
    assert.equal(isLostInTransport(new ConnectError("bad header", Code.Internal)), false, "made locally");
    assert.equal(isLostInTransport(new Error("x")), false);
  });

  it("names the reason", () => {
    assert.equal(resendReason(answered(Code.Unavailable, "STORE_UNAVAILABLE")), "replica-unavailable");
    assert.equal(resendReason(dropped()), "lost-in-transport");
    assert.equal(resendReason(answered(Code.PermissionDenied, "GRANT_CONSUMED")), undefined);
  });
});

describe("replica retry: the loop", () => {
  it("sends the call again up to the given rounds, with the time left", async () => {
    const lefts: number[] = [];
    let calls = 0;
    const result = await withReplicaRetry(policy(2), 5000, async (left) => {
      lefts.push(left);
      if (++calls === 1) throw answered(Code.Unavailable, "DEPENDENCY_UNAVAILABLE");
      if (calls === 2) throw dropped();
      return "ok";
    });
    assert.equal(result, "ok");
    assert.equal(calls, 3);
    assert.ok(lefts.every((l) => l > 0 && l <= 5000));
    let tries = 0;
    await assert.rejects(
      withReplicaRetry(policy(2), 5000, async () => {
        tries++;
        throw dropped();
      }),
      /Connection dropped/,
    );
    assert.equal(tries, 3, "the first call and two more rounds");
    let once = 0;
    await assert.rejects(
      withReplicaRetry(policy(2), 5000, async () => {
        once++;
        throw answered(Code.PermissionDenied, "WRONG_CODE");
      }),
    );
    assert.equal(once, 1, "an answer is never sent again");
  });

  it("pauses between rounds, doubling, and tells of each resend", async () => {
    const seen: string[] = [];
    const started = performance.now();
    let calls = 0;
    await withReplicaRetry(
      { ...policy(2), backoffMs: 40, onResend: (reason, round) => seen.push(`${reason}#${round}`) },
      5000,
      async () => {
        if (++calls < 3) throw dropped();
        return "ok";
      },
    );
    // At least half of 40 ms, then half of 80 ms.
    assert.ok(performance.now() - started >= 60, `paused ${performance.now() - started} ms`);
    assert.deepEqual(seen, ["lost-in-transport#1", "lost-in-transport#2"]);
  });

  it("does not resend when the pause would outlast the deadline", async () => {
    let calls = 0;
    await assert.rejects(
      withReplicaRetry({ ...policy(2), backoffMs: 1000 }, 200, async () => {
        calls++;
        throw dropped();
      }),
    );
    assert.equal(calls, 1);
  });

  it("stops resending while the throttle is at half or below, and refills with OK calls", async () => {
    const throttle = new ResendThrottle(10, 1);
    const calls = { n: 0 };
    const failing = () =>
      withReplicaRetry(policy(2, throttle), 5000, async () => {
        calls.n++;
        throw dropped();
      }).catch(() => {});
    await failing(); // tokens 10 -> 9 -> 8 -> 7: three runs
    await failing(); // 7 -> 6 -> 5: two runs, the second stops at half
    assert.equal(calls.n, 5);
    await failing(); // 5 -> 4
    assert.equal(calls.n, 6, "no resend at half");
    for (let i = 0; i < 3; i++) await withReplicaRetry(policy(2, throttle), 5000, async () => "ok"); // 4 -> 7
    await failing(); // 7 -> 6 -> 5
    assert.equal(calls.n, 8, "resends again once OK calls refilled the bucket");
  });

  it("refuses a throttle without tokens", () => {
    assert.throws(() => new ResendThrottle(0, 0.1), RangeError);
    assert.throws(() => new ResendThrottle(10, 0), RangeError);
  });
});
