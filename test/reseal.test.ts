// Moving every sealed value to a new encryption key while replicas on mixed rings serve traffic:
// the re-seal job is killed midway and resumes; once it reports done, a replica whose ring holds
// only the new key serves every subject (TOTP, recovery codes, grants, a challenge and a recorded
// Verify result from before the job), and nothing in PostgreSQL is sealed under the old key.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { type ReplicaProcess, replicaProcess } from "@stepgate/testkit/replica-process";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { codeForStep, totpStep } from "@stepgate/testkit/totp-code";
import { replicaBasePort } from "./support/cluster.ts";
import { newKey, newSession } from "./support/flows.ts";
import { runResealTool } from "./support/reseal-run.ts";
import { testPolicy, writePolicy } from "./support/stepgate.ts";

const keyA = `a:${randomBytes(32).toString("base64")}`;
const keyB = `b:${randomBytes(32).toString("base64")}`;
const subjectCount = 12;
// Challenges outlive the whole test, so one issued before the job can be answered after it.
const policy = testPolicy.replace("challenge: { ttl: 60,", "challenge: { ttl: 900,");

interface Enrolled extends FlowSubject {
  codes: string[];
}

type Proof = { kind: { case: "totpCode"; value: string } | { case: "recoveryCode"; value: string } };
const totp = (value: string): Proof => ({ kind: { case: "totpCode", value } });
const recovery = (value: string): Proof => ({ kind: { case: "recoveryCode", value } });
const nowStep = () => totpStep(Math.floor(Date.now() / 1000));

// The key id a sealed value starts with (crypto/key-ring.ts: version, id length, id).
const sealedUnder = (column: string) =>
  `convert_from(substring(${column} from 3 for get_byte(${column}, 1)), 'UTF8')`;

describe("re-sealing to a new key while replicas on mixed rings serve", () => {
  let db: TestDatabase;
  let redis: TestRedisPrefix;
  let env: Record<string, string>;
  const replicas: ReplicaProcess[] = [];
  const clients: StepgateClient[] = [];
  const basePort = replicaBasePort();
  const start = async (id: string, port: number, ring: string, active: string) => {
    const r = replicaProcess(id, port, {
      ...env,
      STEPGATE_ENCRYPTION_KEYS: ring,
      STEPGATE_ENCRYPTION_KEY_ID: active,
    });
    replicas.push(r);
    await r.start();
    return r;
  };
  const clientFor = (target: string) => {
    const c = createStepgateClient({ target, caller: "payments" });
    clients.push(c);
    return c;
  };
  const resealEnv = () => ({
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redis.prefix,
    STEPGATE_ENCRYPTION_KEYS: `${keyA},${keyB}`,
    STEPGATE_ENCRYPTION_KEY_ID: "b",
    STEPGATE_RESEAL_BATCH_SIZE: "2",
    STEPGATE_RESEAL_PAUSE_MS: "100",
  });

  before(async () => {
    db = await createTestDatabase();
    redis = createTestRedisPrefix();
    env = {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_POLICY_FILE: writePolicy(policy),
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_LOG_LEVEL: "warn",
      STEPGATE_DRAIN_DELAY_MS: "300",
      STEPGATE_SHUTDOWN_GRACE_MS: "5000",
      DATABASE_URL: db.url,
      DATABASE_POOL_SIZE: "5",
      REDIS_URL: redisUrl,
      REDIS_PREFIX: redis.prefix,
    };
  });
  after(async () => {
    for (const c of clients) c.close();
    await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
    await redis.clean();
    await db.drop();
  });

  it("moves every sealed value to the new key without a failed call", async () => {
    // 1. A fleet on key A alone: subjects with a TOTP factor and recovery codes.
    const onlyA = await start("replica-a", basePort, keyA, "a");
    const first = clientFor(onlyA.address);
    const subjects: Enrolled[] = [];
    for (const s of await seedSubjects(first, subjectCount, { prefix: "reseal-" })) {
      const step = s.lastStep + 1;
      const grant = await elevate(
        first,
        s.subject,
        newSession(),
        "stepgate.create_recovery_codes",
        totp(codeForStep(s.secret, step)),
      );
      const { codes } = await first.factors.createRecoveryCodes({ subject: s.subject, grant });
      subjects.push({ ...s, lastStep: step, codes: [...codes] });
    }
    // Sealed under A and kept for the end: a challenge carrying TOTP copies, and a recorded Verify result.
    const [s0, s1] = subjects as [Enrolled, Enrolled];
    const staleSession = newSession();
    const staleAsk = await first.stepUp.stepUp({
      subject: s0.subject,
      sessionId: staleSession,
      action: "payments.transfer",
    });
    assert.equal(staleAsk.outcome.case, "challenge");
    const staleChallengeId = staleAsk.outcome.value.challengeId;
    const recordedSession = newSession();
    const recordedAsk = await first.stepUp.stepUp({
      subject: s1.subject,
      sessionId: recordedSession,
      action: "account.change_email",
    });
    assert.equal(recordedAsk.outcome.case, "challenge");
    const recordedRequest = {
      challengeId: recordedAsk.outcome.value.challengeId,
      subject: s1.subject,
      sessionId: recordedSession,
      action: "account.change_email",
      proof: recovery(s1.codes.shift() ?? ""),
      idempotencyKey: newKey(),
    };
    const recorded = await first.stepUp.verify(recordedRequest);
    await onlyA.stop("SIGTERM");

    // 2. Mixed rings: replica 1 still writes under A, replica 2 under B; traffic through both.
    const mixed = `${keyA},${keyB}`;
    const r1 = await start("replica-1", basePort + 1, mixed, "a");
    await start("replica-2", basePort + 2, mixed, "b");
    const fleet = clientFor(`ipv4:127.0.0.1:${basePort + 1},127.0.0.1:${basePort + 2}`);
    const final = subjects.map((s) => s.codes.pop() ?? "");
    const traffic = startTraffic(fleet, subjects);

    // 3. The job, killed midway: its cursor stays in PostgreSQL.
    const killed = await runResealTool(resealEnv(), { line: /factors: [1-9]\d* re-sealed/ });
    assert.equal(killed.exit, "SIGKILL", killed.lines.join("\n"));
    const [cursor] = await db.query<{ after: string | null; complete: boolean; resealed: string }>(
      "select after, complete, resealed from reseal_progress where target = 'factors'",
    );
    assert.ok(cursor?.after && !cursor.complete, "the killed job left a cursor midway");
    const underA = async () =>
      Number(
        (
          await db.query<{ n: string }>(
            `select count(*) as n from factors where secret is not null and ${sealedUnder("secret")} = 'a'`,
          )
        )[0]?.n,
      );
    assert.ok((await underA()) > 0, "factor rows were left under A");

    // 4. Run again while replica 1 still writes under A: it resumes; done or not depends on those writes.
    const resumed = await runResealTool(resealEnv());
    assert.ok(
      resumed.lines.some((l) => /factors: .*resumed/.test(l)),
      resumed.lines.join("\n"),
    );
    assert.ok(resumed.exit === 0 || resumed.exit === 1, resumed.lines.join("\n"));
    const tables = resumed.report?.tables as Record<string, { resealed: number; resealedNow: number }>;
    assert.equal(tables.factors?.resealed, subjectCount, "every TOTP row re-sealed once, across both runs");
    assert.equal(
      tables.factors.resealedNow,
      subjectCount - Number(cursor.resealed),
      "the rerun did only what was left",
    );

    // 5. Every replica active on B (as the procedure says), then the final run reports done.
    await r1.stop("SIGTERM");
    await start("replica-1b", basePort + 1, mixed, "b");
    const done = await runResealTool(resealEnv());
    assert.equal(done.exit, 0, done.lines.join("\n"));
    assert.equal(done.report?.done, true);
    const figures = await traffic.stop();
    assert.deepEqual(figures.failures, [], "no call failed during the job");
    assert.ok(figures.calls > 0);
    await Promise.all(replicas.map((r) => r.stop("SIGTERM")));

    // 6. A replica whose ring holds only B: it starts (signing key and fleet secret open) and serves everyone.
    const onlyB = await start("replica-b", basePort + 3, keyB, "b");
    const last = clientFor(onlyB.address);
    const replayed = await last.stepUp.verify(recordedRequest);
    assert.equal(replayed.grant?.token, recorded.grant?.token, "the Verify result recorded under A replays");
    // Codes of the step after each subject's last one: wait for it to come into the skew window.
    while (nowStep() + 1 <= Math.max(...subjects.map((s) => s.lastStep))) await sleep(1000);
    // The challenge issued under A, its TOTP copies re-sealed: answered with subject 0's next code.
    const stale = await last.stepUp.verify({
      challengeId: staleChallengeId,
      subject: s0.subject,
      sessionId: staleSession,
      action: "payments.transfer",
      proof: totp(codeForStep(s0.secret, Math.max(s0.lastStep + 1, nowStep()))),
      idempotencyKey: newKey(),
    });
    assert.equal(
      (await last.stepUp.checkGrant({ token: stale.grant?.token ?? "", action: "payments.transfer" }))
        .subject,
      s0.subject,
    );
    for (const [i, s] of subjects.entries()) {
      const action = "account.change_email";
      // Subject 0 proved its TOTP factor with the stale challenge above.
      const step = Math.max(s.lastStep + 1, nowStep());
      const byTotp =
        i === 0
          ? []
          : [await elevate(last, s.subject, newSession(), action, totp(codeForStep(s.secret, step)))];
      const byCode = await elevate(last, s.subject, newSession(), action, recovery(final[i] ?? ""));
      for (const token of [...byTotp, byCode]) {
        const checked = await last.stepUp.checkGrant({ token, action });
        assert.equal(checked.subject, s.subject);
      }
    }
    for (const [table, column] of [
      ["factors", "secret"],
      ["signing_keys", "private_key"],
      ["service_secrets", "sealed"],
    ]) {
      const [row] = await db.query<{ n: string }>(
        `select count(*) as n from ${table} where ${column} is not null and ${sealedUnder(column as string)} <> 'b'`,
      );
      assert.equal(Number(row?.n), 0, `${table}: nothing sealed under another key than B`);
    }
    const report = done.report as {
      tables: Record<string, { resealed: number }>;
      hot: Record<string, number>;
    };
    console.log(
      `re-sealed rows ${JSON.stringify(Object.fromEntries(Object.entries(report.tables).map(([t, p]) => [t, p.resealed])))}, ` +
        `hot ${JSON.stringify(resumed.report?.hot)} then ${JSON.stringify(report.hot)}; ` +
        `second run ${resumed.exit === 0 ? "done" : "not done"}; calls during the job ${figures.calls}, failed ${figures.failures.length}`,
    );
  });
});

/** Steps `sessionId` up for `action` with `proof`; returns the grant's token. */
async function elevate(
  client: StepgateClient,
  subject: string,
  sessionId: string,
  action: string,
  proof: Proof,
) {
  const asked = await client.stepUp.stepUp({ subject, sessionId, action });
  assert.equal(asked.outcome.case, "challenge");
  const res = await client.stepUp.verify({
    challengeId: asked.outcome.value.challengeId,
    subject,
    sessionId,
    action,
    proof,
    idempotencyKey: newKey(),
  });
  return res.grant?.token ?? "";
}

/**
 * Four callers looping over the subjects until stopped: StepUp for a TOTP-only action (a challenge
 * carrying sealed TOTP copies), then StepUp, Verify with a recovery code, the same Verify retried
 * (the recorded result, whichever replica answers) and CheckGrant. Every failure is kept.
 */
function startTraffic(client: StepgateClient, subjects: Enrolled[]) {
  let running = true;
  let calls = 0;
  const failures: string[] = [];
  const call = async <T>(what: string, f: () => Promise<T>): Promise<T | undefined> => {
    calls++;
    try {
      return await f();
    } catch (error) {
      failures.push(`${what}: ${String(error)}`);
      return undefined;
    }
  };
  const worker = async (w: number) => {
    for (let i = w; running; i++) {
      const s = subjects[i % subjects.length] as Enrolled;
      const sessionId = newSession();
      await call("StepUp", () =>
        client.stepUp.stepUp({ subject: s.subject, sessionId, action: "payments.transfer" }),
      );
      const code = s.codes.shift();
      if (code === undefined) {
        await sleep(20);
        continue;
      }
      const action = "account.change_email";
      const asked = await call("StepUp", () =>
        client.stepUp.stepUp({ subject: s.subject, sessionId, action }),
      );
      if (asked?.outcome.case !== "challenge") continue;
      const request = {
        challengeId: asked.outcome.value.challengeId,
        subject: s.subject,
        sessionId,
        action,
        proof: recovery(code),
        idempotencyKey: newKey(),
      };
      const answered = await call("Verify", () => client.stepUp.verify(request));
      const retried = await call("Verify retried", () => client.stepUp.verify(request));
      if (answered && retried && answered.grant?.token !== retried.grant?.token)
        failures.push("Verify retried: another grant");
      const token = answered?.grant?.token;
      if (token) await call("CheckGrant", () => client.stepUp.checkGrant({ token, action }));
      await sleep(20);
    }
  };
  const workers = Promise.all([0, 1, 2, 3].map(worker));
  return {
    async stop() {
      running = false;
      await workers;
      return { calls, failures };
    },
  };
}
