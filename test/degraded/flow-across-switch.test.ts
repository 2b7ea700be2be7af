// A step-up started while Redis is down finishes after Redis is back, even when it came back empty:
// the flow state PostgreSQL took during the outage (challenge, attempts, recorded result, elevation)
// is carried into Redis before calls go back to it. One replica process, its own Redis and
// PostgreSQL (@stepgate/testkit/degraded-lab), Redis stopped and restarted empty by PID.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type DegradedLab, labRedisPrefix, startDegradedLab } from "@stepgate/testkit/degraded-lab";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { codeForStep, totpStep } from "@stepgate/testkit/totp-code";

const action = "payments.transfer";

/** Waits (bounded) until the replica logs that the hot state moved to `store`. */
async function hotStateOn(lab: DegradedLab, store: "redis" | "postgresql", since: number) {
  const deadline = Date.now() + 15_000;
  const replica = lab.replicas[0];
  assert.ok(replica);
  while (Date.now() < deadline) {
    const moved = replica.process.lines
      .slice(since)
      .some((line) => line.includes('"hot state moved"') && line.includes(`"hotStore":"${store}"`));
    if (moved) return;
    await sleep(50);
  }
  assert.fail(`the replica never moved its hot state to ${store}`);
}

describe("a flow across a move of the hot state back to Redis", () => {
  let lab: DegradedLab;
  let user: FlowSubject;
  before(async () => {
    lab = await startDegradedLab({ replicas: 1 });
    [user] = (await seedSubjects(lab.client, 1)) as [FlowSubject];
  });
  after(async () => {
    await lab?.destroy();
  });

  it("answers after Redis restarted empty a challenge issued while it was down, and replays the result", async () => {
    const replica = lab.replicas[0];
    assert.ok(replica);
    const sessionId = `session-${randomBytes(6).toString("hex")}`;
    const mark = replica.process.lines.length;
    await lab.redis.stop("SIGKILL");
    await hotStateOn(lab, "postgresql", mark);
    const stepUp = await lab.client.stepUp.stepUp({ subject: user.subject, sessionId, action });
    assert.equal(stepUp.outcome.case, "challenge");
    const { challengeId } = stepUp.outcome.value;

    const back = replica.process.lines.length;
    await lab.redis.start();
    await hotStateOn(lab, "redis", back);
    const keys = await lab.redisClient.keys(`${labRedisPrefix}challenge:*`);
    assert.equal(keys.length, 1, "the challenge was carried into the empty Redis");

    const step = Math.max(totpStep(Date.now() / 1000), user.lastStep + 1);
    const answer = {
      challengeId,
      subject: user.subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode" as const, value: codeForStep(user.secret, step) } },
      idempotencyKey: `key-${randomBytes(8).toString("hex")}`,
    };
    const verified = await lab.client.stepUp.verify(answer);
    assert.ok(verified.grant?.token, "Verify on Redis answered the challenge issued on PostgreSQL");
    const replayed = await lab.client.stepUp.verify(answer);
    assert.equal(replayed.grant?.token, verified.grant?.token, "a retry gets the recorded grant");
    const again = await lab.client.stepUp.stepUp({ subject: user.subject, sessionId, action });
    assert.equal(again.outcome.case, "grant", "the elevation holds on Redis");
  });
});
