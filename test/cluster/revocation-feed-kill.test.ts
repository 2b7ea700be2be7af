// The revocation feed across replica kills: three replica processes, ten verifiers subscribed
// through one round_robin channel each. Sessions are ended before, between and after SIGKILLs of
// each replica in turn; every verifier must receive each revocation exactly once (resuming from its
// cursor on another replica) and, at the end, refuse every revoked grant offline.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, GrantError, type StepgateClient } from "@stepgate/client";
import { grantsForSessions, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { type Cluster, startCluster } from "../support/cluster.ts";

const action = "payments.transfer";

describe("the revocation feed across replica kills", () => {
  let cluster: Cluster;
  let admin: StepgateClient;
  const verifiers: StepgateClient[] = [];
  before(async () => {
    cluster = await startCluster({ size: 3 });
    admin = createStepgateClient({ target: cluster.target(), caller: "payments" });
    for (let i = 0; i < 10; i++)
      verifiers.push(createStepgateClient({ target: cluster.target(), caller: "payments" }));
  });
  after(async () => {
    for (const c of [admin, ...verifiers]) c.close();
    await cluster.close();
  });

  it("delivers every revocation exactly once to every verifier, and each is refused offline", async () => {
    const subjects = await seedSubjects(admin, 16, { prefix: "feed-" });
    const grants = await grantsForSessions(admin, subjects, action, "feed-session-");
    const expectOf = (g: (typeof grants)[number]) => ({ action, subject: g.subject, sessionId: g.sessionId });
    for (const v of verifiers) await v.verifyGrant(grants[0]?.token ?? "", expectOf(grants[0] as never));
    // Four sessions ended between kills; each of the three replicas is killed in turn, then started again.
    for (const [i, g] of grants.entries()) {
      if (i % 4 === 0 && i > 0) {
        const replica = cluster.replicas[i / 4 - 1];
        await replica?.stop("SIGKILL");
        await admin.stepUp.endSession({ subject: g.subject, sessionId: g.sessionId });
        await replica?.start();
      } else {
        await admin.stepUp.endSession({ subject: g.subject, sessionId: g.sessionId });
      }
    }
    const refusesAll = async (v: StepgateClient) => {
      for (const g of grants) {
        const refused = await v.verifyGrant(g.token, expectOf(g)).then(
          () => false,
          (error: unknown) => error instanceof GrantError && error.reason === "GRANT_REVOKED",
        );
        if (!refused) return false;
      }
      return true;
    };
    for (let i = 0; i < 100 && !(await Promise.all(verifiers.map(refusesAll))).every(Boolean); i++)
      await sleep(50);
    const statuses = verifiers.map((v) => v.revocationFeed());
    console.log(
      `# streams opened per verifier: ${statuses.map((s) => s?.streams).join(" ")}; received: ${statuses.map((s) => s?.received).join(" ")}`,
    );
    assert.ok(
      (await Promise.all(verifiers.map(refusesAll))).every(Boolean),
      "every revoked grant refused by every verifier",
    );
    assert.deepEqual(
      statuses.map((s) => s?.received),
      verifiers.map(() => grants.length),
      "each revocation received exactly once",
    );
    assert.ok(
      statuses.some((s) => (s?.streams ?? 0) > 1),
      "some verifier resumed on another replica (the test covers resumption)",
    );
  });
});
