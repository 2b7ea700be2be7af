// Replicas mid-rotation: one ring, two keys, and replicas that disagree on which key is active
// (STEPGATE_ENCRYPTION_KEY_ID). A Verify retried on the other replica must still find its result.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { loadConfig } from "@stepgate/server/config/config";
import { totpCode } from "@stepgate/server/factors/totp";
import { createLogger } from "@stepgate/server/log/logger";
import { type RunningServer, runServer } from "@stepgate/server/server/run";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { newKey, newSession, newSubject } from "./support/flows.ts";
import { writePolicy } from "./support/stepgate.ts";

const ring = ["old", "new"].map((id) => `${id}:${randomBytes(32).toString("base64")}`).join(",");
const codeAt = (secret: string, stepOffset: number) =>
  totpCode(secret, Math.floor(Date.now() / 1000) + stepOffset * 30);

describe("replicas on different active encryption keys", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let replicas: RunningServer[] = [];
  let clients: StepgateClient[] = [];
  before(async () => {
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    const policyFile = writePolicy();
    const quiet = createLogger("warn", {}, new Writable({ write: (_c, _e, done) => done() }));
    const start = (activeKeyId: string) =>
      runServer(
        loadConfig({
          STEPGATE_HOST: "127.0.0.1",
          STEPGATE_PORT: "0",
          STEPGATE_POLICY_FILE: policyFile,
          STEPGATE_INSECURE_DEV: "1",
          STEPGATE_ENCRYPTION_KEYS: ring,
          STEPGATE_ENCRYPTION_KEY_ID: activeKeyId,
          STEPGATE_DRAIN_DELAY_MS: "0",
          DATABASE_URL: db.url,
          REDIS_URL: redisUrl,
          REDIS_PREFIX: redis.prefix,
        }),
        quiet,
      );
    replicas = [await start("old"), await start("new")];
    clients = replicas.map((r) =>
      createStepgateClient({ target: `127.0.0.1:${r.port}`, caller: "payments", retry: { maxAttempts: 1 } }),
    );
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(replicas.map((r) => r.shutdown(1000)));
    await redis.clean();
    await db.drop();
  });

  it("a Verify retried on a replica with another active key returns the first grant", async () => {
    const [onOld, onNew] = clients as [StepgateClient, StepgateClient];
    const subject = newSubject();
    const sessionId = newSession();
    const action = "payments.transfer";
    const enrolled = await onOld.factors.enrollTotp({
      subject,
      label: "Phone",
      accountName: "a@example.com",
    });
    await onOld.factors.confirmTotp({
      subject,
      factorId: enrolled.factorId,
      code: codeAt(enrolled.secret, 0),
    });
    const stepUp = await onOld.stepUp.stepUp({ subject, sessionId, action });
    assert.equal(stepUp.outcome.case, "challenge");
    const request = {
      challengeId: stepUp.outcome.value.challengeId,
      subject,
      sessionId,
      action,
      // The next step: the confirming code used up the current one.
      proof: { kind: { case: "totpCode" as const, value: codeAt(enrolled.secret, 1) } },
      idempotencyKey: newKey(),
    };
    const first = await onOld.stepUp.verify(request);
    const retried = await onNew.stepUp.verify(request);
    assert.equal(retried.grant?.token, first.grant?.token, "the retry gets the recorded grant");
    const checked = await onNew.stepUp.checkGrant({ token: first.grant?.token ?? "", action });
    assert.equal(checked.subject, subject);
  });
});
