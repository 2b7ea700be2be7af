// Call accounting: every call to a replica is logged exactly once, and counted in
// `stepgate.rpc.errors` when it fails, with the status the client really got: also when the
// deadline or a cancel ends it while its handler still runs, and when grpc-js refuses it before any
// handler runs (undecodable bytes, an oversized request, an unknown method).
// Each test reads only the log lines and counts written after it started.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { create, toBinary } from "@bufbuild/protobuf";
import { BinaryWriter, WireType } from "@bufbuild/protobuf/wire";
import * as grpc from "@grpc/grpc-js";
import { type Attributes, type Counter, createNoopMeter, type Meter, metrics } from "@opentelemetry/api";
import { callerHeader, ListFactorsRequestSchema } from "@stepgate/api";
import { newSubject } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

/** What the server counted in `stepgate.rpc.errors`, in order. */
const rpcErrors: Attributes[] = [];

/**
 * A global meter that records `stepgate.rpc.errors` (every other instrument is a no-op). Set before
 * the replica starts: it takes its meter when it is wired.
 */
function recordRpcErrors(): void {
  const noop = createNoopMeter();
  const counter: Counter = { add: (_value, attributes) => void rpcErrors.push(attributes ?? {}) };
  const meter: Meter = Object.assign(Object.create(noop) as Meter, {
    createCounter: (name: string) => (name === "stepgate.rpc.errors" ? counter : noop.createCounter(name)),
  });
  assert.ok(metrics.setGlobalMeterProvider({ getMeter: () => meter }), "no other meter provider is set");
}

interface CallLine {
  level: string;
  msg: string;
  rpc: string;
  status: string;
  ms: number;
  error?: Record<string, unknown>;
}

interface Outcome {
  code: grpc.status;
  details: string;
}

const listFactors = "/stepgate.v1.FactorService/ListFactors";

function callerMetadata() {
  const metadata = new grpc.Metadata();
  metadata.add(callerHeader, "payments");
  return metadata;
}

/** A unary call with hand-made request bytes; `started` receives the call, e.g. to cancel it. */
function rawCall(
  client: grpc.Client,
  path: string,
  bytes: Uint8Array,
  deadlineMs = 5000,
  started?: (call: grpc.ClientUnaryCall) => void,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(bytes),
      callerMetadata(),
      { deadline: Date.now() + deadlineMs },
      (error) =>
        resolve(error ? { code: error.code, details: error.details } : { code: grpc.status.OK, details: "" }),
    );
    started?.(call);
  });
}

/** A well-formed protobuf message holding only unknown field 15 with `n` bytes. */
function unknownFieldMessage(n: number): Uint8Array {
  return new BinaryWriter().tag(15, WireType.LengthDelimited).bytes(new Uint8Array(n)).finish();
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const stop = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > stop) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("call accounting: one line and one count per call, with the status the client got", () => {
  let h: Harness;
  let raw: grpc.Client;
  before(async () => {
    recordRpcErrors();
    h = await startStepgate();
    raw = new grpc.Client(h.target, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await h.close();
    metrics.disable();
  });

  /** Where this test's log lines and counts start. */
  const mark = () => ({ logs: h.logs.length, errors: rpcErrors.length });

  /** The call lines ("call" and "call failed") for `rpc` written since `from`. */
  const callLines = (from: { logs: number }, rpc: string): CallLine[] =>
    h.logs
      .slice(from.logs)
      .map((line) => JSON.parse(line) as CallLine)
      .filter((l) => (l.msg === "call" || l.msg === "call failed") && l.rpc === rpc);

  /** What was counted in `stepgate.rpc.errors` since `from`. */
  const countedSince = (from: { errors: number }) => rpcErrors.slice(from.errors);

  /** The one line for `rpc`: waits for it, then a little longer, so a second one would show. */
  async function theLine(from: { logs: number }, rpc: string): Promise<CallLine> {
    await until(`a call line for ${rpc}`, () => callLines(from, rpc).length > 0);
    await sleep(200);
    const lines = callLines(from, rpc);
    assert.equal(lines.length, 1, `exactly one line for ${rpc}: ${JSON.stringify(lines)}`);
    return lines[0] as CallLine;
  }

  /** Server connections waiting for a lock in the replica's database. */
  const waitingOnLocks = async () =>
    Number(
      (
        await h.db.query<{ n: string }>(
          "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
        )
      )[0]?.n,
    );

  /**
   * Runs `call` while the factors table is locked, so ListFactors' handler blocks in the store,
   * then releases the lock and waits until the handler has run to its end.
   */
  async function withFactorsLocked(call: () => Promise<Outcome>): Promise<Outcome> {
    await h.db.query("begin");
    let outcome: Outcome;
    try {
      await h.db.query("lock table factors in access exclusive mode");
      outcome = await call();
    } finally {
      await h.db.query("commit");
    }
    await until("the blocked handler to get its rows", async () => (await waitingOnLocks()) === 0);
    // Its answer comes too late: the call has ended. Give it time to (wrongly) report anything.
    await sleep(200);
    return outcome;
  }

  const listFactorsRequest = () =>
    toBinary(ListFactorsRequestSchema, create(ListFactorsRequestSchema, { subject: newSubject() }));

  it("an answered call: status OK, logged at info, not counted as an error", async () => {
    const from = mark();
    const outcome = await rawCall(raw, listFactors, listFactorsRequest());
    assert.equal(outcome.code, grpc.status.OK, outcome.details);
    const line = await theLine(from, "stepgate.v1.FactorService/ListFactors");
    assert.equal(line.msg, "call");
    assert.equal(line.level, "info");
    assert.equal(line.status, "OK");
    assert.equal(typeof line.ms, "number");
    assert.deepEqual(countedSince(from), []);
  });

  it("a deadline that passes while the handler runs: DEADLINE_EXCEEDED, never OK", async () => {
    const from = mark();
    const outcome = await withFactorsLocked(async () => {
      const call = rawCall(raw, listFactors, listFactorsRequest(), 500);
      // The handler is running, blocked on the lock, when the deadline passes.
      await until("the handler to block on the lock", async () => (await waitingOnLocks()) === 1);
      return call;
    });
    assert.equal(outcome.code, grpc.status.DEADLINE_EXCEEDED, outcome.details);
    const line = await theLine(from, "stepgate.v1.FactorService/ListFactors");
    assert.equal(line.msg, "call");
    assert.equal(line.status, "DEADLINE_EXCEEDED");
    assert.ok(line.ms >= 400 && line.ms < 3000, `ms ${line.ms}: from the request to its deadline`);
    assert.deepEqual(countedSince(from), [
      {
        "rpc.method": "stepgate.v1.FactorService/ListFactors",
        "rpc.grpc.status_code": grpc.status.DEADLINE_EXCEEDED,
      },
    ]);
  });

  it("a call the client cancels while the handler runs: CANCELLED, never OK", async () => {
    const from = mark();
    const outcome = await withFactorsLocked(async () => {
      let started: grpc.ClientUnaryCall | undefined;
      const call = rawCall(raw, listFactors, listFactorsRequest(), 10_000, (c) => {
        started = c;
      });
      await until("the handler to block on the lock", async () => (await waitingOnLocks()) === 1);
      started?.cancel();
      return call;
    });
    assert.equal(outcome.code, grpc.status.CANCELLED, outcome.details);
    const line = await theLine(from, "stepgate.v1.FactorService/ListFactors");
    assert.equal(line.status, "CANCELLED");
    assert.deepEqual(countedSince(from), [
      {
        "rpc.method": "stepgate.v1.FactorService/ListFactors",
        "rpc.grpc.status_code": grpc.status.CANCELLED,
      },
    ]);
  });

  it("undecodable request bytes: INTERNAL, though no handler ran", async () => {
    const from = mark();
    const outcome = await rawCall(
      raw,
      "/stepgate.v1.StepUpService/Verify",
      new Uint8Array([0xff, 0xff, 0xff]),
    );
    assert.equal(outcome.code, grpc.status.INTERNAL);
    assert.equal(outcome.details, "Error deserializing request");
    const line = await theLine(from, "stepgate.v1.StepUpService/Verify");
    assert.equal(line.msg, "call", "the client's mistake, not a handler failure");
    assert.equal(line.status, "INTERNAL");
    assert.deepEqual(countedSince(from), [
      { "rpc.method": "stepgate.v1.StepUpService/Verify", "rpc.grpc.status_code": grpc.status.INTERNAL },
    ]);
  });

  it("a request over 64 KiB: RESOURCE_EXHAUSTED, though no handler ran", async () => {
    const from = mark();
    const outcome = await rawCall(raw, "/stepgate.v1.StepUpService/StepUp", unknownFieldMessage(70_000));
    assert.equal(outcome.code, grpc.status.RESOURCE_EXHAUSTED, outcome.details);
    const line = await theLine(from, "stepgate.v1.StepUpService/StepUp");
    assert.equal(line.status, "RESOURCE_EXHAUSTED");
    assert.deepEqual(countedSince(from), [
      {
        "rpc.method": "stepgate.v1.StepUpService/StepUp",
        "rpc.grpc.status_code": grpc.status.RESOURCE_EXHAUSTED,
      },
    ]);
  });

  it("an unknown method or service: UNIMPLEMENTED as before, logged by name, counted as _OTHER", async () => {
    for (const path of ["/stepgate.v1.StepUpService/Elevate", "/nope.v9.Nothing/Do"]) {
      const from = mark();
      const outcome = await rawCall(raw, path, new Uint8Array());
      assert.equal(outcome.code, grpc.status.UNIMPLEMENTED);
      assert.equal(outcome.details, `The server does not implement the method ${path}`);
      const line = await theLine(from, path.slice(1));
      assert.equal(line.status, "UNIMPLEMENTED");
      // Method names that clients make up must not become metric attributes.
      assert.deepEqual(countedSince(from), [
        { "rpc.method": "_OTHER", "rpc.grpc.status_code": grpc.status.UNIMPLEMENTED },
      ]);
    }
  });

  it('a handler that fails unexpectedly: "call failed" with INTERNAL and what is safe of the error', async () => {
    const from = mark();
    await h.db.query("alter table factors rename to factors_away");
    let outcome: Outcome;
    try {
      outcome = await rawCall(raw, listFactors, listFactorsRequest());
    } finally {
      await h.db.query("alter table factors_away rename to factors");
    }
    assert.equal(outcome.code, grpc.status.INTERNAL);
    assert.equal(outcome.details, "internal error");
    const line = await theLine(from, "stepgate.v1.FactorService/ListFactors");
    assert.equal(line.msg, "call failed");
    assert.equal(line.level, "error");
    assert.equal(line.status, "INTERNAL");
    assert.equal(line.error?.code, "42P01", "PostgreSQL's undefined_table");
    assert.deepEqual(countedSince(from), [
      { "rpc.method": "stepgate.v1.FactorService/ListFactors", "rpc.grpc.status_code": grpc.status.INTERNAL },
    ]);
  });

  it("health checks are logged at debug, so probes do not flood the info log", async () => {
    const from = mark();
    const outcome = await rawCall(raw, "/grpc.health.v1.Health/Check", new Uint8Array());
    assert.equal(outcome.code, grpc.status.OK, outcome.details);
    const line = await theLine(from, "grpc.health.v1.Health/Check");
    assert.equal(line.level, "debug");
    assert.equal(line.status, "OK");
  });
});
