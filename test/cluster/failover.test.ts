import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/server/factors/totp";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { driveLoad, ReplicaTally, report, seedUsers, type User } from "../support/load.ts";

describe("three replicas under load", () => {
  let cluster: Cluster;
  let client: StepgateClient;
  before(async () => {
    cluster = await startCluster({ size: 3 });
    client = createStepgateClient({ target: cluster.target(), caller: "payments" });
  });
  after(async () => {
    client.close();
    await cluster.close();
  });

  it("spreads calls evenly over the replicas", async () => {
    const users = await seedUsers(client, 90);
    const tally = new ReplicaTally();
    const result = await driveLoad(client, users, 60, undefined, tally);
    report("spread", result);
    process.stdout.write(`# spread by replica: ${JSON.stringify(Object.fromEntries(tally.counts))}\n`);
    assert.equal(result.failures, 0);
    assert.equal(tally.counts.size, 3);
    for (const [id, n] of tally.counts) assert.ok(n >= 180 * 0.25, `${id} served ${n} of 180 calls`);
  });

  it("loses no flow when a replica is killed with SIGKILL mid-load", async () => {
    const users = await seedUsers(client, 240);
    const victim = cluster.replicas[1];
    assert.ok(victim);
    const result = await driveLoad(client, users, 60, async () => {
      await sleep(1500);
      assert.equal(await victim.stop("SIGKILL"), "SIGKILL");
    });
    report("kill -9 one of three", result);
    assert.deepEqual(result.errors, {});
    await victim.start();
  });

  it("loses no flow during a rolling restart (SIGTERM, drain, start again) of all three", async () => {
    const users = await seedUsers(client, 360);
    const result = await driveLoad(client, users, 40, async () => {
      await sleep(500);
      for (const replica of cluster.replicas) {
        assert.equal(await replica.stop("SIGTERM"), 0, `${replica.id} drains and exits 0`);
        await replica.start();
        await sleep(300);
      }
    });
    report("rolling restart of three", result);
    assert.deepEqual(result.errors, {});
  });

  it("a Verify whose replica dies after accepting the code is retried into the same grant", async () => {
    const [user] = (await seedUsers(client, 1)) as [User];
    const sessionId = "s-crash";
    const action = "payments.transfer";
    const stepUp = await client.stepUp.stepUp({ subject: user.subject, sessionId, action });
    assert.equal(stepUp.outcome.case, "challenge");
    const request = {
      challengeId: stepUp.outcome.value.challengeId,
      subject: user.subject,
      sessionId,
      action,
      proof: {
        kind: { case: "totpCode" as const, value: totpCode(user.secret, Math.floor(Date.now() / 1000) + 30) },
      },
      idempotencyKey: "crash-retry-0001",
    };
    // The fault header makes whichever replica serves this Verify kill itself after recording the
    // result and before replying; the client's retry lands on another replica.
    const answered = await client.stepUp.verify(request, {
      headers: { "stepgate-fault": "crash-after-verify" },
    });
    const dead = cluster.replicas.filter((r) => !r.running);
    assert.equal(dead.length, 1, "exactly one replica died");
    assert.equal(await dead[0]?.exited(), "SIGKILL");
    // The retry returned the recorded result: asking again with the key gives the very same grant.
    const again = await client.stepUp.verify(request);
    assert.ok(answered.grant?.token);
    assert.equal(again.grant?.token, answered.grant.token);
    await client.stepUp.checkGrant({ token: answered.grant.token, action });
    await dead[0]?.start();
  });
});
