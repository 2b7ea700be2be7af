import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { Method } from "@stepgate/api";
import { expectFailure } from "./support/errors.ts";
import { challenge, enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

for (const hotStore of ["redis", "postgresql"] as const) {
  describe(`the step-up flow (hot state in ${hotStore})`, () => {
    let h: Harness;
    before(async () => {
      h = await startStepgate({ redis: hotStore === "redis" });
    });
    after(() => h.close());

    it("enrols, steps up, verifies, grants, checks offline and online, and ends the session", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const action = "payments.transfer";
      const before = await h.client.stepUp.stepUp({ subject, sessionId, action });
      assert.equal(before.outcome.case, "enrollmentRequired");
      assert.deepEqual(before.outcome.value?.methods, [Method.TOTP]);

      const { secret } = await enrolTotp(h, subject);
      const listed = await h.client.factors.listFactors({ subject });
      assert.equal(listed.factors.length, 1);
      assert.equal(listed.factors[0]?.method, Method.TOTP);

      const c = await challenge(h.client, subject, sessionId, action);
      assert.deepEqual(c.methods, [Method.TOTP]);
      assert.equal(c.requiredAcr, "aal2");
      const verified = await h.client.stepUp.verify({
        challengeId: c.challengeId,
        subject,
        sessionId,
        action,
        proof: { kind: { case: "totpCode", value: h.code(secret) } },
        idempotencyKey: newKey(),
      });
      const grant = verified.grant;
      assert.ok(grant);
      assert.equal(grant.acr, "aal2");
      assert.deepEqual(grant.amr, ["otp"]);

      const offline = await h.client.verifyGrant(grant.token, { action, subject, sessionId });
      assert.equal(offline.aud, "payments");
      assert.equal(offline.sub, subject);
      assert.equal(offline.jti, grant.grantId);
      for (const claim of ["iss", "sid", "action", "acr", "amr", "auth_time", "iat", "exp", "jti"]) {
        assert.ok(claim in offline, `claim ${claim}`);
      }
      const online = await h.client.stepUp.checkGrant({ token: grant.token, action });
      assert.equal(online.subject, subject);
      assert.equal(online.sessionId, sessionId);

      // The session now holds a fresh elevation: the next StepUp is answered with a grant.
      const again = await h.client.stepUp.stepUp({ subject, sessionId, action });
      assert.equal(again.outcome.case, "grant");

      await h.client.stepUp.endSession({ subject, sessionId });
      await expectFailure(
        h.client.stepUp.checkGrant({ token: grant.token, action }),
        Code.PermissionDenied,
        "GRANT_REVOKED",
      );
      // Ended for good: no new challenge or grant for it.
      await expectFailure(
        h.client.stepUp.stepUp({ subject, sessionId, action }),
        Code.FailedPrecondition,
        "SESSION_ENDED",
      );
    });
  });
}
