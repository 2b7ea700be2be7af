import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { assertCallLines } from "./support/call-logs.ts";
import { expectFailure, failure } from "./support/errors.ts";
import {
  challenge,
  enrolTotp,
  grantFor,
  newKey,
  newSession,
  newSubject,
  stepUpWithTotp,
} from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const reasonOf = (error: unknown) => ConnectError.from(error).findDetails(ErrorInfoSchema)[0]?.reason ?? "";

/** Fires `n` calls at once and counts the outcomes by reason ("OK" for success). */
async function tally(calls: Promise<unknown>[]): Promise<Record<string, number>> {
  const settled = await Promise.allSettled(calls);
  const counts: Record<string, number> = {};
  for (const s of settled) {
    const key = s.status === "fulfilled" ? "OK" : reasonOf(s.reason);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

const wrongCode = (right: string) => String((Number(right) + 500_000) % 1_000_000).padStart(6, "0");

for (const hotStore of ["redis", "postgresql"] as const) {
  describe(`security invariants (hot state in ${hotStore})`, () => {
    let h: Harness;
    before(async () => {
      h = await startStepgate({ redis: hotStore === "redis" });
    });
    after(async () => {
      if (process.env.STEPGATE_TEST_SHOW_LOGS)
        process.stderr.write(h.logs.filter((l) => l.includes("error")).join(""));
      await h.close();
    });

    const verifyCall = (
      subject: string,
      sessionId: string,
      action: string,
      challengeId: string,
      code: string,
      key = newKey(),
    ) =>
      h.client.stepUp.verify({
        challengeId,
        subject,
        sessionId,
        action,
        proof: { kind: { case: "totpCode", value: code } },
        idempotencyKey: key,
      });

    it("accepts a TOTP code once: a replay on a new challenge fails as CODE_REPLAYED", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const code = h.code(secret);
      const first = await challenge(h.client, subject, sessionId, "payments.transfer");
      await verifyCall(subject, sessionId, "payments.transfer", first.challengeId, code);
      const otherSession = newSession();
      const second = await challenge(h.client, subject, otherSession, "payments.transfer");
      await expectFailure(
        verifyCall(subject, otherSession, "payments.transfer", second.challengeId, code),
        Code.PermissionDenied,
        "CODE_REPLAYED",
      );
    });

    it("accepts one code exactly once when many calls race with it", async () => {
      const subject = newSubject();
      const { secret } = await enrolTotp(h, subject);
      // Fewer racers than the lockout limit: every replay also counts as a failure of the subject.
      const sessions = Array.from({ length: 7 }, () => newSession());
      const challenges = await Promise.all(
        sessions.map((s) => challenge(h.client, subject, s, "payments.transfer")),
      );
      const code = h.code(secret);
      const counts = await tally(
        challenges.map((c, i) =>
          verifyCall(subject, sessions[i] as string, "payments.transfer", c.challengeId, code),
        ),
      );
      assert.deepEqual(counts, { OK: 1, CODE_REPLAYED: 6 });
    });

    it("refuses a code two steps old and accepts one step of skew", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      // Move past the confirming code's step, so the step before now is unused.
      h.clock.advance(60_000);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      const f = await expectFailure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, h.code(secret, -2)),
        Code.PermissionDenied,
        "WRONG_CODE",
      );
      assert.equal(f.metadata.attempts_remaining, "4");
      await verifyCall(subject, sessionId, "payments.transfer", c.challengeId, h.code(secret, -1));
    });

    it("holds the per-challenge attempt limit exactly under parallel wrong codes", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      const bad = wrongCode(h.code(secret));
      const counts = await tally(
        Array.from({ length: 20 }, () =>
          verifyCall(subject, sessionId, "payments.transfer", c.challengeId, bad),
        ),
      );
      assert.deepEqual(counts, { WRONG_CODE: 5, CHALLENGE_LOCKED: 15 });
      // Even the right code is refused once the challenge is locked.
      await expectFailure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, h.code(secret)),
        Code.ResourceExhausted,
        "CHALLENGE_LOCKED",
      );
    });

    it("locks the subject after 8 consecutive failures across challenges, with RetryInfo", async () => {
      const subject = newSubject();
      const { secret } = await enrolTotp(h, subject);
      const bad = wrongCode(h.code(secret));
      const sessions = Array.from({ length: 6 }, () => newSession());
      const challenges = await Promise.all(
        sessions.map((s) => challenge(h.client, subject, s, "payments.transfer")),
      );
      const calls = challenges.flatMap((c, i) =>
        Array.from({ length: 3 }, () =>
          verifyCall(subject, sessions[i] as string, "payments.transfer", c.challengeId, bad),
        ),
      );
      assert.deepEqual(await tally(calls), { WRONG_CODE: 8, SUBJECT_LOCKED: 10 });
      const fresh = newSession();
      const c = await challenge(h.client, subject, fresh, "payments.transfer");
      const f = await expectFailure(
        verifyCall(subject, fresh, "payments.transfer", c.challengeId, h.code(secret)),
        Code.ResourceExhausted,
        "SUBJECT_LOCKED",
      );
      assert.ok(
        f.retryDelayMs !== undefined && f.retryDelayMs > 0 && f.retryDelayMs <= 60_000,
        `retry ${f.retryDelayMs}`,
      );
    });

    it("resets the run of failures on success", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      for (let i = 0; i < 4; i++) {
        await expectFailure(
          verifyCall(subject, sessionId, "payments.transfer", c.challengeId, wrongCode(h.code(secret))),
          Code.PermissionDenied,
        );
      }
      await verifyCall(subject, sessionId, "payments.transfer", c.challengeId, h.code(secret));
      h.clock.advance(30_000);
      const next = await challenge(h.client, subject, newSession(), "payments.transfer");
      const f = await failure(
        h.client.stepUp.verify({
          challengeId: next.challengeId,
          subject,
          sessionId: "other",
          action: "payments.transfer",
          proof: { kind: { case: "totpCode", value: h.code(secret) } },
          idempotencyKey: newKey(),
        }),
      );
      assert.equal(f.reason, "CHALLENGE_MISMATCH");
    });

    it("expires challenges", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      h.clock.advance(61_000);
      await expectFailure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, h.code(secret)),
        Code.FailedPrecondition,
        "CHALLENGE_EXPIRED",
      );
    });

    it("returns the same result for a repeated idempotency key, and refuses the key with another proof", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      const key = newKey();
      const bad = wrongCode(h.code(secret));
      const wrong1 = await failure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, bad, key),
      );
      const wrong2 = await failure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, bad, key),
      );
      assert.equal(wrong1.reason, "WRONG_CODE");
      assert.deepEqual(wrong2, wrong1, "a repeated failure is the same failure and spends no attempt");

      const okKey = newKey();
      const code = h.code(secret);
      const [a, b] = await Promise.all([
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, code, okKey),
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, code, okKey),
      ]);
      const c3 = await verifyCall(subject, sessionId, "payments.transfer", c.challengeId, code, okKey);
      assert.equal(a.grant?.token, b.grant?.token);
      assert.equal(a.grant?.token, c3.grant?.token);
      await expectFailure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, wrongCode(code), okKey),
        Code.FailedPrecondition,
        "IDEMPOTENCY_KEY_REUSED",
      );
      // Another key on an answered challenge: the challenge is spent.
      await expectFailure(
        verifyCall(subject, sessionId, "payments.transfer", c.challengeId, code),
        Code.FailedPrecondition,
        "CHALLENGE_USED",
      );
    });

    it("binds a challenge to its subject, session, action and calling service", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const c = await challenge(h.client, subject, sessionId, "payments.transfer");
      const code = h.code(secret);
      const base = { challengeId: c.challengeId, subject, sessionId, action: "payments.transfer" };
      const proof = { kind: { case: "totpCode" as const, value: code } };
      for (const other of [
        { subject: newSubject() },
        { sessionId: newSession() },
        { action: "account.change_email" },
      ]) {
        await expectFailure(
          h.client.stepUp.verify({ ...base, ...other, proof, idempotencyKey: newKey() }),
          Code.PermissionDenied,
          "CHALLENGE_MISMATCH",
        );
      }
      await expectFailure(
        h.clientAs("mallory").stepUp.verify({ ...base, proof, idempotencyKey: newKey() }),
        Code.PermissionDenied,
        "CHALLENGE_MISMATCH",
      );
      // The mismatches spent nothing: the rightful answer still works.
      await h.client.stepUp.verify({ ...base, proof, idempotencyKey: newKey() });
    });

    it("binds a grant to its audience and action", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const { grant } = await stepUpWithTotp(h, subject, sessionId, "payments.transfer", secret);
      const token = grant?.token ?? "";
      await expectFailure(
        h.client.stepUp.checkGrant({ token, action: "secrets.read" }),
        Code.PermissionDenied,
        "GRANT_MISMATCH",
      );
      await expectFailure(
        h.clientAs("reports").stepUp.checkGrant({ token, action: "payments.transfer" }),
        Code.PermissionDenied,
        "GRANT_MISMATCH",
      );
      await assert.rejects(h.client.verifyGrant(token, { action: "payments.transfer", audience: "reports" }));
    });

    it("re-challenges once max_age has passed, and asks more of a stronger action", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      await stepUpWithTotp(h, subject, sessionId, "payments.transfer", secret);
      assert.equal(
        (await h.client.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" })).outcome.case,
        "grant",
      );
      // account.change_email allows 600 s; payments.transfer only 300 s.
      h.clock.advance(301_000);
      assert.equal(
        (await h.client.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" })).outcome.case,
        "challenge",
      );
      assert.equal(
        (await h.client.stepUp.stepUp({ subject, sessionId, action: "account.change_email" })).outcome.case,
        "grant",
      );
      // aal3 is out of reach of TOTP: the user must enrol something stronger.
      const stronger = await h.client.stepUp.stepUp({ subject, sessionId, action: "admin.root" });
      assert.equal(stronger.outcome.case, "enrollmentRequired");
      assert.equal(stronger.outcome.value?.requiredAcr, "aal3");
    });

    it("issues single-use grants for max_age 0: the first CheckGrant consumes it", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const { grant } = await stepUpWithTotp(h, subject, sessionId, "secrets.read", secret);
      assert.equal(grant?.singleUse, true);
      const token = grant?.token ?? "";
      await assert.rejects(
        h.client.verifyGrant(token, { action: "secrets.read" }),
        /single-use|single use|online/i,
      );
      const counts = await tally(
        Array.from({ length: 8 }, () => h.client.stepUp.checkGrant({ token, action: "secrets.read" })),
      );
      assert.deepEqual(counts, { OK: 1, GRANT_CONSUMED: 7 });
      // No elevation is reused for max_age 0.
      assert.equal(
        (await h.client.stepUp.stepUp({ subject, sessionId, action: "secrets.read" })).outcome.case,
        "challenge",
      );
    });

    it("rejects expired grants", async () => {
      const subject = newSubject();
      const { secret } = await enrolTotp(h, subject);
      const { grant } = await stepUpWithTotp(h, subject, newSession(), "payments.transfer", secret);
      h.clock.advance(130_000);
      await expectFailure(
        h.client.stepUp.checkGrant({ token: grant?.token ?? "", action: "payments.transfer" }),
        Code.PermissionDenied,
        "GRANT_EXPIRED",
      );
    });

    it("needs a fresh, single-use management grant to add, regenerate or remove factors", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret, factorId } = await enrolTotp(h, subject);
      const enrol = (grant: string) =>
        h.client.factors.enrollTotp({ subject, label: "Tablet", accountName: "a@example.com", grant });
      await expectFailure(enrol(""), Code.PermissionDenied, "GRANT_REQUIRED");
      await expectFailure(
        h.client.factors.createRecoveryCodes({ subject, grant: "" }),
        Code.PermissionDenied,
        "GRANT_REQUIRED",
      );
      await expectFailure(
        h.client.factors.removeFactor({ subject, factorId, grant: "" }),
        Code.PermissionDenied,
        "GRANT_REQUIRED",
      );
      const payments = await stepUpWithTotp(h, subject, sessionId, "payments.transfer", secret);
      await expectFailure(enrol(payments.grant?.token ?? ""), Code.PermissionDenied, "GRANT_MISMATCH");

      const token = await grantFor(h.client, subject, sessionId, "stepgate.enroll_totp");
      await enrol(token);
      await expectFailure(enrol(token), Code.PermissionDenied, "GRANT_CONSUMED");
      // A grant issued to another calling service cannot be used here.
      const other = await grantFor(h.clientAs("support"), subject, sessionId, "stepgate.enroll_totp");
      await expectFailure(enrol(other), Code.PermissionDenied, "GRANT_MISMATCH");

      const recoveryGrant = await grantFor(h.client, subject, sessionId, "stepgate.create_recovery_codes");
      const created = await h.client.factors.createRecoveryCodes({ subject, grant: recoveryGrant });
      assert.equal(created.codes.length, 10);
      assert.equal(new Set(created.codes).size, 10);

      const removeGrant = await grantFor(h.client, subject, sessionId, "stepgate.remove_factor");
      const listed = async () =>
        (await h.client.factors.listFactors({ subject })).factors.map((f) => f.factorId);
      const before = await listed();
      assert.ok(before.includes(factorId), "the factor to remove is listed");
      await h.client.factors.removeFactor({ subject, factorId, grant: removeGrant });
      // It alone is gone: the Tablet and the recovery codes stay.
      const left = await listed();
      assert.deepEqual(
        left,
        before.filter((id) => id !== factorId),
      );
      assert.equal(left.length, 2, "the Tablet and the recovery codes");
    });

    it("accepts each recovery code once, in any case and spacing", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { codes } = await h.client.factors.createRecoveryCodes({ subject, grant: "" });
      const code = codes[0] as string;
      const c = await challenge(h.client, subject, sessionId, "account.change_email");
      const loose = ` ${code.toUpperCase().replace("-", " ")} `;
      const ok = await h.client.stepUp.verify({
        challengeId: c.challengeId,
        subject,
        sessionId,
        action: "account.change_email",
        proof: { kind: { case: "recoveryCode", value: loose } },
        idempotencyKey: newKey(),
      });
      assert.equal(ok.recoveryCodesRemaining, 9);
      const c2 = await challenge(h.client, subject, newSession(), "account.change_email");
      await expectFailure(
        h.client.stepUp.verify({
          challengeId: c2.challengeId,
          subject,
          sessionId: newSession(),
          action: "account.change_email",
          proof: { kind: { case: "recoveryCode", value: code } },
          idempotencyKey: newKey(),
        }),
        Code.PermissionDenied,
      );
      // Recovery codes are not allowed where the policy says TOTP only.
      const paymentsOutcome = await h.client.stepUp.stepUp({
        subject,
        sessionId,
        action: "payments.transfer",
      });
      assert.equal(paymentsOutcome.outcome.case, "enrollmentRequired");
    });

    it("stores secrets only encrypted or hashed, and never logs them", async () => {
      // Only the lines this test's calls produced: earlier tests' lines prove nothing about these secrets.
      const logsFrom = h.logs.length;
      const subject = newSubject();
      const sessionId = newSession();
      const enrolled = await h.client.factors.enrollTotp({
        subject,
        label: "Phone",
        accountName: "x@example.com",
        grant: "",
      });
      const confirmCode = h.code(enrolled.secret);
      await h.client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: confirmCode });
      h.clock.advance(30_000);
      const recoveryGrant = (
        await h.client.stepUp.stepUp({ subject, sessionId, action: "stepgate.create_recovery_codes" })
      ).outcome;
      assert.equal(recoveryGrant.case, "challenge");
      const verified = await stepUpWithTotp(
        h,
        subject,
        sessionId,
        "stepgate.create_recovery_codes",
        enrolled.secret,
      );
      const { codes } = await h.client.factors.createRecoveryCodes({
        subject,
        grant: verified.grant?.token ?? "",
      });
      const rows = await h.db.query<{ secret: Buffer | null; key_id: string | null }>(
        "select secret, key_id from factors where subject = $1 and method = 'totp'",
        [subject],
      );
      assert.equal(rows[0]?.key_id, "test1");
      const raw = JSON.stringify(await h.db.query("select * from factors where subject = $1", [subject]));
      const hashes = await h.db.query<{ code_hash: Buffer }>(
        "select c.code_hash from recovery_codes c join factors f on f.id = c.factor_id where f.subject = $1",
        [subject],
      );
      assert.equal(hashes.length, 10);
      const stored = [raw, ...hashes.map((r) => r.code_hash.toString("latin1"))].join("\n");
      const redisDump = h.redis ? JSON.stringify(await h.redis.dump()) : "";
      const hotRows = JSON.stringify(await h.db.query("select * from hot_entries"));
      await h.flushAudit();
      const audit = JSON.stringify(await h.db.query("select * from audit_events"));
      const secrets = [
        enrolled.secret,
        confirmCode,
        ...codes,
        ...codes.map((c) => c.replace("-", "")),
        verified.grant?.token ?? "",
      ];
      for (const secret of secrets) {
        assert.equal(stored.includes(secret), false, "a secret is stored in clear");
        assert.equal(
          redisDump.includes(secret) || hotRows.includes(secret),
          false,
          `secret #${secrets.indexOf(secret)} is in the hot store`,
        );
        assert.equal(audit.includes(secret), false, "a secret is in the audit trail");
      }
      // The server logged each of the calls above, and none of those lines carries a secret.
      assertCallLines(
        h.logs.slice(logsFrom),
        [
          "FactorService/EnrollTotp OK",
          "FactorService/ConfirmTotp OK",
          "StepUpService/StepUp OK",
          "StepUpService/StepUp OK",
          "StepUpService/Verify OK",
          "FactorService/CreateRecoveryCodes OK",
        ],
        secrets,
      );
    });
  });
}
