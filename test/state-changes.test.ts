// Every cell of the table in services/stepgate/policy/STATE-CHANGES.md: what each security state
// change does to elevations, open challenges, grants already issued, counters and the audit trail,
// through the real service on both hot stores.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code } from "@connectrpc/connect";
import { expectFailure } from "./support/errors.ts";
import { challenge, enrolTotp, grantFor, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate, testPolicy } from "./support/stepgate.ts";

/** Lockouts short enough to watch end: three failures lock for 3 s (real time: the stores expire them). */
const lockoutSeconds = 3;
// Challenges outlive the test clock's steps (each fresh TOTP code moves it 30 s).
const policy = testPolicy
  .replace(/lockout: .*/, `lockout: { max_failures: 3, duration: ${lockoutSeconds} }`)
  .replace(/challenge: .*/, "challenge: { ttl: 600, max_attempts: 5 }");

type Proof = { kind: { case: "totpCode"; value: string } | { case: "recoveryCode"; value: string } };
const totp = (value: string): Proof => ({ kind: { case: "totpCode", value } });
const recovery = (value: string): Proof => ({ kind: { case: "recoveryCode", value } });
const wrongCode = (right: string) => String((Number(right) + 500_000) % 1_000_000).padStart(6, "0");

for (const hotStore of ["redis", "postgresql"] as const) {
  describe(`security state changes (hot state in ${hotStore})`, () => {
    let h: Harness;
    before(async () => {
      h = await startStepgate({ redis: hotStore === "redis", policy });
    });
    after(async () => {
      await h.close();
    });

    /** A TOTP code no earlier call used: the clock moves one step first. */
    const freshCode = (secret: string) => {
      h.clock.advance(30_000);
      return h.code(secret);
    };
    const verify = (subject: string, sessionId: string, action: string, challengeId: string, proof: Proof) =>
      h.client.stepUp.verify({ challengeId, subject, sessionId, action, proof, idempotencyKey: newKey() });
    /** Steps the session up for `action` with `proof`; returns the grant's token. */
    const elevate = async (subject: string, sessionId: string, action: string, proof: () => Proof) => {
      const c = await challenge(h.client, subject, sessionId, action);
      const res = await verify(subject, sessionId, action, c.challengeId, proof());
      return res.grant?.token ?? "";
    };
    const checkGrant = (token: string, action: string) => h.client.stepUp.checkGrant({ token, action });
    /** A management grant from a session of its own, proved with the TOTP factor `secret`. */
    const managementGrant = (subject: string, action: string, secret: string) =>
      elevate(subject, newSession(), action, () => totp(freshCode(secret)));
    const outcome = async (subject: string, sessionId: string, action: string) =>
      (await h.client.stepUp.stepUp({ subject, sessionId, action })).outcome.case;
    /** The audit trail's event types for the subject, oldest first. */
    const auditTypes = async (subject: string) => {
      await h.flushAudit();
      const rows = await h.db.query<{ type: string }>(
        "select type from audit_events where subject = $1 order by at, id",
        [subject],
      );
      return rows.map((r) => r.type);
    };
    /** A subject with two TOTP factors: A (first) and B (added with a management grant). */
    const twoFactors = async () => {
      const subject = newSubject();
      const a = await enrolTotp(h, subject);
      const grant = await managementGrant(subject, "stepgate.enroll_totp", a.secret);
      const b = await enrolTotp(h, subject, h.client, grant);
      return { subject, a, b };
    };
    const remove = async (subject: string, factorId: string, withSecret: string) => {
      const grant = await managementGrant(subject, "stepgate.remove_factor", withSecret);
      await h.client.factors.removeFactor({ subject, factorId, grant });
    };

    describe("factor removed", () => {
      it("elevations it produced stop counting in every session; another factor's still count", async () => {
        const { subject, a, b } = await twoFactors();
        const [withA, alsoWithA, withB] = [newSession(), newSession(), newSession()];
        await elevate(subject, withA, "account.change_email", () => totp(freshCode(a.secret)));
        await elevate(subject, alsoWithA, "payments.transfer", () => totp(freshCode(a.secret)));
        await elevate(subject, withB, "account.change_email", () => totp(freshCode(b.secret)));
        await remove(subject, a.factorId, b.secret);
        assert.equal(await outcome(subject, withA, "account.change_email"), "challenge");
        assert.equal(await outcome(subject, alsoWithA, "payments.transfer"), "challenge");
        assert.equal(await outcome(subject, withB, "account.change_email"), "grant");
      });

      it("grants issued from them fail CheckGrant with GRANT_REVOKED; others still pass", async () => {
        const { subject, a, b } = await twoFactors();
        const [withA, withB] = [newSession(), newSession()];
        const fromA = await elevate(subject, withA, "account.change_email", () => totp(freshCode(a.secret)));
        const reissued = await grantFor(h.client, subject, withA, "account.change_email");
        const fromB = await elevate(subject, withB, "account.change_email", () => totp(freshCode(b.secret)));
        await checkGrant(fromA, "account.change_email");
        await remove(subject, a.factorId, b.secret);
        for (const token of [fromA, reissued]) {
          await expectFailure(
            checkGrant(token, "account.change_email"),
            Code.PermissionDenied,
            "GRANT_REVOKED",
          );
        }
        await checkGrant(fromB, "account.change_email");
      });

      it("an open challenge answered with it is FACTOR_REMOVED, counted; another factor answers it", async () => {
        const { subject, a, b } = await twoFactors();
        const sessionId = newSession();
        const open = await challenge(h.client, subject, sessionId, "account.change_email");
        await remove(subject, a.factorId, b.secret);
        const f = await expectFailure(
          verify(subject, sessionId, "account.change_email", open.challengeId, totp(freshCode(a.secret))),
          Code.FailedPrecondition,
          "FACTOR_REMOVED",
        );
        assert.ok(!f.message.includes("already used"), f.message);
        const res = await verify(
          subject,
          sessionId,
          "account.change_email",
          open.challengeId,
          totp(h.code(b.secret)),
        );
        assert.ok(res.grant?.token);
        const types = await auditTypes(subject);
        assert.ok(types.includes("verify.failed"), "the removed factor's answer is a recorded failure");
      });

      it("with every factor removed: no grant from any earlier elevation, and enrolment is required", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const elevated = newSession();
        const token = await elevate(subject, elevated, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        await remove(subject, a.factorId, a.secret);
        assert.deepEqual((await h.client.factors.listFactors({ subject })).factors, []);
        assert.equal(await outcome(subject, elevated, "account.change_email"), "enrollmentRequired");
        assert.equal(await outcome(subject, newSession(), "account.change_email"), "enrollmentRequired");
        await expectFailure(
          checkGrant(token, "account.change_email"),
          Code.PermissionDenied,
          "GRANT_REVOKED",
        );
      });

      it("counters are untouched and the trail records factor.removed", async () => {
        const { subject, a, b } = await twoFactors();
        const sessionId = newSession();
        const open = await challenge(h.client, subject, sessionId, "account.change_email");
        const bad = (code: string) =>
          verify(subject, sessionId, "account.change_email", open.challengeId, totp(code));
        await expectFailure(bad(wrongCode(h.code(b.secret))), Code.PermissionDenied, "WRONG_CODE");
        await remove(subject, a.factorId, b.secret);
        const f = await expectFailure(bad(wrongCode(h.code(b.secret))), Code.PermissionDenied, "WRONG_CODE");
        assert.equal(f.metadata.attempts_remaining, "3", "the challenge's attempts went on counting down");
        const types = await auditTypes(subject);
        assert.equal(types.filter((t) => t === "factor.removed").length, 1);
      });
    });

    describe("recovery codes regenerated", () => {
      /** A subject with TOTP and a first set of recovery codes. */
      const withCodes = async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const grant = await managementGrant(subject, "stepgate.create_recovery_codes", a.secret);
        const { codes, factorId } = await h.client.factors.createRecoveryCodes({ subject, grant });
        return { subject, a, codes, setId: factorId };
      };
      const regenerate = async (subject: string, secret: string) => {
        const grant = await managementGrant(subject, "stepgate.create_recovery_codes", secret);
        return h.client.factors.createRecoveryCodes({ subject, grant });
      };

      it("the old set's elevations and grants end; TOTP's stay", async () => {
        const { subject, a, codes } = await withCodes();
        const [byCode, byTotp] = [newSession(), newSession()];
        const fromCode = await elevate(subject, byCode, "account.change_email", () =>
          recovery(codes[0] ?? ""),
        );
        const fromTotp = await elevate(subject, byTotp, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        await regenerate(subject, a.secret);
        assert.equal(await outcome(subject, byCode, "account.change_email"), "challenge");
        assert.equal(await outcome(subject, byTotp, "account.change_email"), "grant");
        await expectFailure(
          checkGrant(fromCode, "account.change_email"),
          Code.PermissionDenied,
          "GRANT_REVOKED",
        );
        await checkGrant(fromTotp, "account.change_email");
      });

      it("an open challenge refuses an old code as WRONG_CODE and accepts a new one", async () => {
        const { subject, a, codes } = await withCodes();
        const sessionId = newSession();
        const open = await challenge(h.client, subject, sessionId, "account.change_email");
        const fresh = await regenerate(subject, a.secret);
        const answer = (code: string) =>
          verify(subject, sessionId, "account.change_email", open.challengeId, recovery(code));
        await expectFailure(answer(codes[1] ?? ""), Code.PermissionDenied, "WRONG_CODE");
        const res = await answer(fresh.codes[0] ?? "");
        assert.equal(res.recoveryCodesRemaining, 9);
      });

      it("the trail records recovery_codes.created naming the replaced set", async () => {
        const { subject, a, setId } = await withCodes();
        const fresh = await regenerate(subject, a.secret);
        await h.flushAudit();
        const rows = await h.db.query<{ details: { factor_id: string; replaced: string[] } }>(
          "select details from audit_events where subject = $1 and type = 'recovery_codes.created' order by at, id",
          [subject],
        );
        assert.deepEqual(rows.at(-1)?.details, {
          factor_id: fresh.factorId,
          replaced: [setId],
          authorized_by: "grant",
        });
      });
    });

    describe("factor added", () => {
      it("earlier elevations and grants stand; an open challenge keeps its factors; new ones offer it", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const sessionId = newSession();
        const token = await elevate(subject, sessionId, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        const pendingSession = newSession();
        const open = await challenge(h.client, subject, pendingSession, "payments.transfer");
        const grant = await managementGrant(subject, "stepgate.enroll_totp", a.secret);
        const b = await enrolTotp(h, subject, h.client, grant);
        assert.equal(await outcome(subject, sessionId, "account.change_email"), "grant");
        await checkGrant(token, "account.change_email");
        await expectFailure(
          verify(subject, pendingSession, "payments.transfer", open.challengeId, totp(freshCode(b.secret))),
          Code.PermissionDenied,
          "WRONG_CODE",
        );
        const later = await challenge(h.client, subject, newSession(), "payments.transfer");
        assert.ok(later.challengeId);
        const types = await auditTypes(subject);
        assert.ok(types.includes("factor.enrolled") && types.includes("factor.confirmed"));
      });
    });

    describe("lockout reached and ended", () => {
      /** Three wrong answers in a row at one challenge: the lockout starts. */
      const lockOut = async (subject: string, secret: string) => {
        const sessionId = newSession();
        const c = await challenge(h.client, subject, sessionId, "payments.transfer");
        for (let i = 0; i < 3; i++) {
          await expectFailure(
            verify(subject, sessionId, "payments.transfer", c.challengeId, totp(wrongCode(h.code(secret)))),
            Code.PermissionDenied,
            "WRONG_CODE",
          );
        }
        return { sessionId, challengeId: c.challengeId };
      };

      it("answers are refused without being checked or counted, and do not extend the lock", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const locked = await lockOut(subject, a.secret);
        const sessionId = newSession();
        const open = await challenge(h.client, subject, sessionId, "payments.transfer");
        const right = () =>
          verify(subject, sessionId, "payments.transfer", open.challengeId, totp(h.code(a.secret)));
        const delays: number[] = [];
        for (let i = 0; i < 3; i++) {
          const f = await expectFailure(right(), Code.ResourceExhausted, "SUBJECT_LOCKED");
          delays.push(f.retryDelayMs ?? -1);
          await sleep(700);
        }
        assert.ok(delays[0] !== undefined && delays[0] <= lockoutSeconds * 1000, `${delays}`);
        for (let i = 1; i < delays.length; i++) {
          assert.ok((delays[i] ?? 0) < (delays[i - 1] ?? 0) - 400, `RetryInfo counts down: ${delays}`);
        }
        await sleep((delays.at(-1) ?? 0) - 700 + 300);
        // The lock ended `duration` after the third failure, whatever was tried meanwhile.
        const res = await right();
        assert.ok(res.grant?.token);
        // The locked challenge kept its attempts: five allowed, three spent before the lock.
        const f = await expectFailure(
          verify(
            subject,
            locked.sessionId,
            "payments.transfer",
            locked.challengeId,
            totp(wrongCode(h.code(a.secret))),
          ),
          Code.PermissionDenied,
          "WRONG_CODE",
        );
        assert.equal(f.metadata.attempts_remaining, "1");
      });

      it("elevations and grants from before the lock stand while it holds", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const sessionId = newSession();
        const token = await elevate(subject, sessionId, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        await lockOut(subject, a.secret);
        assert.equal(await outcome(subject, sessionId, "account.change_email"), "grant");
        await checkGrant(token, "account.change_email");
      });

      it("once ended the run of failures starts from zero; the trail records one lockout.started", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        await lockOut(subject, a.secret);
        const sessionId = newSession();
        const c = await challenge(h.client, subject, sessionId, "account.change_email");
        const wrong = () =>
          verify(
            subject,
            sessionId,
            "account.change_email",
            c.challengeId,
            totp(wrongCode(h.code(a.secret))),
          );
        await expectFailure(wrong(), Code.ResourceExhausted, "SUBJECT_LOCKED");
        await expectFailure(wrong(), Code.ResourceExhausted, "SUBJECT_LOCKED");
        await sleep(lockoutSeconds * 1000 + 300);
        await expectFailure(wrong(), Code.PermissionDenied, "WRONG_CODE");
        await expectFailure(wrong(), Code.PermissionDenied, "WRONG_CODE");
        const types = await auditTypes(subject);
        assert.equal(types.filter((t) => t === "verify.failed").length, 5);
        assert.equal(types.filter((t) => t === "lockout.started").length, 1);
      });
    });

    describe("session ended", () => {
      it("drops its elevations, revokes its grants, and ends its open challenges without counting", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const sessionId = newSession();
        const token = await elevate(subject, sessionId, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        const reissued = await grantFor(h.client, subject, sessionId, "account.change_email");
        // max_age 0: the elevated session is still challenged.
        const open = await challenge(h.client, subject, sessionId, "secrets.read");
        const other = newSession();
        const otherToken = await elevate(subject, other, "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        await h.client.stepUp.endSession({ subject, sessionId });
        await expectFailure(
          outcome(subject, sessionId, "account.change_email"),
          Code.FailedPrecondition,
          "SESSION_ENDED",
        );
        for (const t of [token, reissued]) {
          await expectFailure(checkGrant(t, "account.change_email"), Code.PermissionDenied, "GRANT_REVOKED");
        }
        await expectFailure(
          verify(subject, sessionId, "secrets.read", open.challengeId, totp(freshCode(a.secret))),
          Code.FailedPrecondition,
          "SESSION_ENDED",
        );
        // Other sessions are untouched.
        assert.equal(await outcome(subject, other, "account.change_email"), "grant");
        await checkGrant(otherToken, "account.change_email");
        // Nothing was counted: two wrong answers later, the subject is not locked (three would lock).
        const next = newSession();
        const c = await challenge(h.client, subject, next, "payments.transfer");
        const answer = (code: string) =>
          verify(subject, next, "payments.transfer", c.challengeId, totp(code));
        for (let i = 0; i < 2; i++) {
          await expectFailure(answer(wrongCode(h.code(a.secret))), Code.PermissionDenied, "WRONG_CODE");
        }
        assert.ok((await answer(freshCode(a.secret))).grant?.token);
        const types = await auditTypes(subject);
        assert.ok(types.includes("session.ended"));
        assert.equal(
          types.filter((t) => t === "verify.failed").length,
          2,
          "the refused answer is not a failure",
        );
      });

      it("stays ended: within the same second or later, StepUp answers SESSION_ENDED and issues no grant", async () => {
        const subject = newSubject();
        const a = await enrolTotp(h, subject);
        const sessionId = newSession();
        await elevate(subject, sessionId, "account.change_email", () => totp(freshCode(a.secret)));
        await h.client.stepUp.endSession({ subject, sessionId });
        for (const action of ["account.change_email", "secrets.read"]) {
          await expectFailure(outcome(subject, sessionId, action), Code.FailedPrecondition, "SESSION_ENDED");
        }
        h.clock.advance(3_600_000);
        await expectFailure(
          outcome(subject, sessionId, "account.change_email"),
          Code.FailedPrecondition,
          "SESSION_ENDED",
        );
        // A new session of the same subject steps up as usual, and its grant passes.
        const token = await elevate(subject, newSession(), "account.change_email", () =>
          totp(freshCode(a.secret)),
        );
        await checkGrant(token, "account.change_email");
      });
    });
  });
}
