// Every RPC is safe to send again after a lost reply: a consuming CheckGrant, EnrollTotp,
// CreateRecoveryCodes and RemoveFactor sent again with the same idempotency key are answered as
// the first call was, while another key (or none) still finds the grant spent. Through the real
// service, on both hot stores.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { expectFailure } from "./support/errors.ts";
import { enrolTotp, newKey, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

for (const redis of [true, false]) {
  describe(`retries answered as the first call (hot state in ${redis ? "redis" : "postgresql"})`, () => {
    let h: Harness;
    before(async () => {
      h = await startStepgate({ redis });
    });
    after(async () => {
      await h?.close();
    });

    /** A grant for `action` from a fresh TOTP step-up. */
    const grantFor = async (subject: string, secret: string, action: string) => {
      h.clock.advance(30_000);
      const verified = await stepUpWithTotp(h, subject, newSession(), action, secret);
      return verified.grant?.token ?? "";
    };

    it("CheckGrant: a single-use grant consumed with a key passes again with that key only", async () => {
      const subject = newSubject();
      const { secret } = await enrolTotp(h, subject);
      const token = await grantFor(subject, secret, "secrets.read");
      const key = newKey();
      const first = await h.client.stepUp.checkGrant({ token, action: "secrets.read", idempotencyKey: key });
      const again = await h.client.stepUp.checkGrant({ token, action: "secrets.read", idempotencyKey: key });
      assert.equal(again.grantId, first.grantId);
      await expectFailure(
        h.client.stepUp.checkGrant({ token, action: "secrets.read", idempotencyKey: newKey() }),
        Code.PermissionDenied,
        "GRANT_CONSUMED",
      );
      await expectFailure(
        h.client.stepUp.checkGrant({ token, action: "secrets.read" }),
        Code.PermissionDenied,
        "GRANT_CONSUMED",
      );
      // Another caller cannot borrow the key: the audience is part of it.
      await expectFailure(
        h.clientAs("billing").stepUp.checkGrant({ token, action: "secrets.read", idempotencyKey: key }),
        Code.PermissionDenied,
        "GRANT_MISMATCH",
      );
    });

    it("CheckGrant: without a key, a second consumption fails as before", async () => {
      const subject = newSubject();
      const { secret } = await enrolTotp(h, subject);
      const token = await grantFor(subject, secret, "secrets.read");
      await h.client.stepUp.checkGrant({ token, action: "secrets.read" });
      await expectFailure(
        h.client.stepUp.checkGrant({ token, action: "secrets.read" }),
        Code.PermissionDenied,
        "GRANT_CONSUMED",
      );
    });

    it("EnrollTotp, CreateRecoveryCodes and RemoveFactor sent again with their key spend the same grant again", async () => {
      const subject = newSubject();
      const a = await enrolTotp(h, subject);
      const enrolGrant = await grantFor(subject, a.secret, "stepgate.enroll_totp");
      const enrolKey = newKey();
      const enrol = () =>
        h.client.factors.enrollTotp({
          ...{ subject, label: "Spare", accountName: "a@b.c" },
          grant: enrolGrant,
          idempotencyKey: enrolKey,
        });
      const [e1, e2] = [await enrol(), await enrol()];
      assert.notEqual(e1.factorId, e2.factorId, "each attempt starts its own enrolment");
      await expectFailure(
        h.client.factors.enrollTotp({
          subject,
          label: "x",
          accountName: "a@b.c",
          grant: enrolGrant,
          idempotencyKey: newKey(),
        }),
        Code.PermissionDenied,
        "GRANT_CONSUMED",
      );
      // The user confirms what the last reply showed.
      await h.client.factors.confirmTotp({ subject, factorId: e2.factorId, code: h.code(e2.secret) });

      const codesGrant = await grantFor(subject, a.secret, "stepgate.create_recovery_codes");
      const codesKey = newKey();
      const codes = () =>
        h.client.factors.createRecoveryCodes({ subject, grant: codesGrant, idempotencyKey: codesKey });
      const [c1, c2] = [await codes(), await codes()];
      assert.equal(c2.codes.length, 10);
      const listed = (await h.client.factors.listFactors({ subject })).factors.map((f) => f.factorId);
      assert.ok(listed.includes(c2.factorId) && !listed.includes(c1.factorId), "the last set stands");

      const removeGrant = await grantFor(subject, a.secret, "stepgate.remove_factor");
      const removeKey = newKey();
      const remove = () =>
        h.client.factors.removeFactor({
          subject,
          factorId: a.factorId,
          grant: removeGrant,
          idempotencyKey: removeKey,
        });
      await remove();
      // The grant's own factor is gone, and so revoked: its retry is still answered as the first.
      await remove();
      await expectFailure(
        h.client.factors.removeFactor({
          subject,
          factorId: a.factorId,
          grant: removeGrant,
          idempotencyKey: newKey(),
        }),
        Code.PermissionDenied,
        "GRANT_REVOKED",
      );
      const after = (await h.client.factors.listFactors({ subject })).factors.map((f) => f.factorId);
      assert.ok(!after.includes(a.factorId));
    });

    it("refuses malformed idempotency keys on every RPC that takes one, writing nothing", async () => {
      const subject = newSubject();
      for (const bad of ["short", "k".repeat(129), "key with spaces", "key\u0000nul000"]) {
        const calls = [
          h.client.stepUp.checkGrant({ token: "t", action: "secrets.read", idempotencyKey: bad }),
          h.client.factors.enrollTotp({ subject, label: "l", accountName: "a", idempotencyKey: bad }),
          h.client.factors.createRecoveryCodes({ subject, idempotencyKey: bad }),
          h.client.factors.removeFactor({
            subject,
            factorId: "00000000-0000-4000-8000-000000000000",
            idempotencyKey: bad,
          }),
        ];
        for (const call of calls) {
          const f = await expectFailure(call, Code.InvalidArgument);
          assert.ok(f.fields.includes("idempotency_key"), `fields ${f.fields.join(",")}`);
        }
      }
      assert.deepEqual((await h.client.factors.listFactors({ subject })).factors, []);
    });
  });
}
