// A Verify whose replica dies after claiming the code and before recording its result, while the
// user's next step-up takes the factor's next TOTP step: the retry with the same idempotency key,
// on another replica, gets a grant, never CODE_REPLAYED. The claim and the recorded result behave
// as one step for a retry, whichever replica it reaches.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/testkit/totp-code";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { failure } from "../support/errors.ts";
import { newKey, newSession, newSubject } from "../support/flows.ts";

describe("a replica killed between a Verify's claim and its recorded result", () => {
  let cluster: Cluster;
  const clients: StepgateClient[] = [];
  // One replica each and no retries: the test decides where each attempt goes.
  const clientOf = (address: string) => {
    const client = createStepgateClient({
      target: address,
      caller: "payments",
      retry: { maxAttempts: 1 },
      replicaRetryRounds: 0,
    });
    clients.push(client);
    return client;
  };
  before(async () => {
    cluster = await startCluster({ size: 2 });
  });
  after(async () => {
    for (const c of clients) c.close();
    await cluster?.close();
  });

  it("answers the retry with a grant although the factor's next step was taken in between", async () => {
    const [doomed, survivor] = cluster.replicas as [
      NonNullable<Cluster["replicas"][0]>,
      NonNullable<Cluster["replicas"][0]>,
    ];
    const first = clientOf(doomed.address);
    const other = clientOf(survivor.address);
    const now = () => Math.floor(Date.now() / 1000);
    // Confirmed with the previous step's code (the window allows one step back), so the current
    // step and the next are both free.
    const user = { subject: newSubject(), secret: "" };
    const enrolled = await other.factors.enrollTotp({
      subject: user.subject,
      label: "Phone",
      accountName: "a@b.c",
    });
    user.secret = enrolled.secret;
    await other.factors.confirmTotp({
      subject: user.subject,
      factorId: enrolled.factorId,
      code: totpCode(user.secret, now() - 30),
    });
    const action = "payments.transfer";
    const stepUpFor = async (client: StepgateClient, sessionId: string) => {
      const res = await client.stepUp.stepUp({ subject: user.subject, sessionId, action });
      assert.equal(res.outcome.case, "challenge");
      return res.outcome.value.challengeId;
    };
    const sessionId = newSession();
    const request = {
      challengeId: await stepUpFor(other, sessionId),
      ...{ subject: user.subject, sessionId, action },
      proof: { kind: { case: "totpCode" as const, value: totpCode(user.secret, now()) } },
      idempotencyKey: newKey(),
    };
    const lost = await failure(
      first.stepUp.verify(request, { headers: { "stepgate-fault": "crash-after-claim" } }),
    );
    assert.equal(lost.reason, undefined, `the reply was lost with its replica (${lost.message})`);
    const exit = await doomed.exited();
    assert.equal(exit, "SIGKILL", "the replica died after claiming the code");
    // The user moves on: the next step-up takes the factor's next time step.
    const next = newSession();
    const nextVerify = await other.stepUp.verify({
      challengeId: await stepUpFor(other, next),
      ...{ subject: user.subject, sessionId: next, action },
      proof: { kind: { case: "totpCode", value: totpCode(user.secret, now() + 30) } },
      idempotencyKey: newKey(),
    });
    assert.ok(nextVerify.grant?.token);
    // The retry of the lost Verify, on the survivor.
    const retried = await other.stepUp.verify(request);
    assert.ok(retried.grant?.token, "the retry gets a grant");
    await other.stepUp.checkGrant({ token: retried.grant.token, action });
    // And a replay of its code under another key is still refused.
    const third = newSession();
    const replay = await failure(
      other.stepUp.verify({
        ...request,
        challengeId: await stepUpFor(other, third),
        sessionId: third,
        idempotencyKey: newKey(),
      }),
    );
    assert.equal(replay.reason, "CODE_REPLAYED");
  });
});
