// One of three replicas is up (health SERVING, connections accepted) but fails every call with
// the UNAVAILABLE a dead store produces (STEPGATE_FAULT_UNAVAILABLE=1). Its failures must reach
// clients before any response header, or grpc-js commits the call and never retries it elsewhere.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { errorDomain } from "@stepgate/api";
import { ListFactorsRequestSchema } from "@stepgate/api/gen/stepgate/v1/factor_service_pb";
import { StepUpRequestSchema } from "@stepgate/api/gen/stepgate/v1/step_up_service_pb";
import { createStepgateClient } from "@stepgate/client";
import { replicaTrailer } from "@stepgate/server/rpc/guard";
import type { ReplicaProcess } from "@stepgate/testkit/replica-process";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { driveLoad, ReplicaTally, report, seedUsers } from "../support/load.ts";
import { plainUnary, richDetails, type Seen } from "../support/plain-call.ts";

const sickId = "replica-3";

/** One unary call straight to `address` with a plain grpc-js client, as `payments`. */
async function plainCall<I extends DescMessage>(
  address: string,
  path: string,
  schema: I,
  request: MessageInitShape<I>,
): Promise<Seen> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  try {
    return await plainUnary(client, path, schema, request, { caller: "payments", deadlineMs: 5000 });
  } finally {
    client.close();
  }
}

/** The per-call log lines (rpc/call-accounting.ts) among a replica's lines from `from` on, by status. */
function callStatuses(replica: ReplicaProcess, from: number): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const line of replica.lines.slice(from)) {
    let parsed: { msg?: string; rpc?: string; status?: string };
    try {
      parsed = JSON.parse(line) as typeof parsed;
    } catch {
      continue;
    }
    if (parsed.msg !== "call" || !parsed.rpc?.startsWith("stepgate.v1.")) continue;
    const status = parsed.status ?? "?";
    counts[status] = (counts[status] ?? 0) + 1;
  }
  return counts;
}

describe("a replica that fails every call UNAVAILABLE, under load", () => {
  let cluster: Cluster;
  let sick: ReplicaProcess;
  before(async () => {
    cluster = await startCluster({
      size: 3,
      replicaEnv: { [sickId]: { STEPGATE_FAULT_UNAVAILABLE: "1" } },
    });
    const found = cluster.replicas.find((r) => r.id === sickId);
    assert.ok(found);
    sick = found;
  });
  after(async () => {
    await cluster.close();
  });

  it("answers with its status first: no response headers, the dead store's status, its name in a trailer", async () => {
    const calls = [
      [
        "/stepgate.v1.StepUpService/StepUp",
        StepUpRequestSchema,
        { subject: "u", sessionId: "s", action: "a" },
      ],
      ["/stepgate.v1.FactorService/ListFactors", ListFactorsRequestSchema, { subject: "u" }],
    ] as const;
    for (const [path, schema, request] of calls) {
      const seen = await plainCall(sick.address, path, schema as DescMessage, request);
      assert.deepEqual(seen.events, ["status"], `${path}: no response headers before the status`);
      assert.equal(seen.status.code, grpc.status.UNAVAILABLE, path);
      assert.deepEqual(seen.status.metadata.get(replicaTrailer), [sickId], `${path}: trailer`);
      const { info, retryMs } = richDetails(seen.status.metadata);
      assert.ok(info, `${path}: status details`);
      assert.equal(info.reason, "STORE_UNAVAILABLE", path);
      assert.equal(info.domain, errorDomain, path);
      assert.equal(retryMs, 1000, `${path}: RetryInfo 1000 ms`);
    }
    // A healthy replica answers the same call, and names itself in the trailer too.
    const healthy = cluster.replicas.find((r) => r.id !== sickId);
    assert.ok(healthy);
    const ok = await plainCall(healthy.address, calls[1][0], ListFactorsRequestSchema, { subject: "u" });
    assert.equal(ok.status.code, grpc.status.OK);
    assert.deepEqual(ok.status.metadata.get(replicaTrailer), [healthy.id]);
  });

  it("retries every call it fails on a healthy replica: no flow fails", async () => {
    // Users are seeded through a client of their own, on the healthy replicas only, so the load's
    // client starts fresh: its outlier detector's first ejection check comes 5 s after it starts,
    // after the load, and its retry throttle's bucket is full.
    const healthy = cluster.replicas.filter((r) => r.id !== sickId).map((r) => r.address);
    const seeder = createStepgateClient({ target: `ipv4:${healthy.join(",")}`, caller: "payments" });
    const users = await seedUsers(seeder, 240).finally(() => seeder.close());
    const client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    const from = sick.lines.length;
    const tally = new ReplicaTally();
    try {
      const result = await driveLoad(client, users, 60, undefined, tally);
      report("one of three fails UNAVAILABLE", result);
      const failedCalls = result.failures; // a flow stops at its first failed call
      // The sick replica's failed attempts: at least one before each call a healthy replica
      // answered after a retry (more when a whole round of retries landed on it). Its log lines
      // may lag a little.
      let sickStatuses = callStatuses(sick, from);
      for (
        let waited = 0;
        (sickStatuses.UNAVAILABLE ?? 0) < tally.retriedAttempts && waited < 2000;
        waited += 50
      ) {
        await sleep(50);
        sickStatuses = callStatuses(sick, from);
      }
      const sickFailed = sickStatuses.UNAVAILABLE ?? 0;
      const answered = [...tally.counts.values()].reduce((a, b) => a + b, 0);
      process.stdout.write(
        `# calls answered by replica (trailer): ${JSON.stringify(Object.fromEntries(tally.counts))}; ` +
          `${sickId} failed ${sickFailed} attempts; ${tally.retriedCalls} calls answered after a retry, ` +
          `${tally.retriedAttempts} failed attempts in their last round; ${failedCalls} calls failed\n`,
      );
      assert.ok(sickFailed >= 50, `the sick replica got its share of attempts (${sickFailed})`);
      assert.deepEqual(Object.keys(sickStatuses), ["UNAVAILABLE"], "it served nothing");
      assert.equal(tally.counts.get(sickId), undefined, "no answer came from the sick replica");
      assert.equal(tally.counts.size, 2, "both healthy replicas answered");
      assert.ok(sickFailed >= tally.retriedAttempts, "every failed attempt was the sick replica's");
      // The channel retries a call 4 times on round_robin picks that do not avoid the sick
      // replica; the client sends a call that all of them failed again (two more rounds).
      assert.equal(failedCalls, 0, `no flow fails: ${JSON.stringify(result.errors)}`);
      assert.equal(answered, 2 * users.length, "every StepUp and Verify was answered");
    } finally {
      client.close();
    }
  });
});
