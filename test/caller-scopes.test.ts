// Per-caller scopes from the policy's `callers`, through the real service: a calling service may
// step up, verify and check grants only for its actions, and touch factors only as its scope says.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { expectFailure } from "./support/errors.ts";
import { challenge, enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate, testPolicy } from "./support/stepgate.ts";

const policy = `${testPolicy}
callers:
  payments: { actions: ["*"], factors: manage }
  reports: { factors: read }
  mail: { actions: [account.change_email] }
`;

describe("caller scopes", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate({ policy });
  });
  after(async () => {
    await h.close();
  });

  const denied = (call: Promise<unknown>) => expectFailure(call, Code.PermissionDenied, "CALLER_NOT_ALLOWED");

  it("lets a caller step up, verify and check grants only for its actions", async () => {
    const subject = newSubject();
    const { secret } = await enrolTotp(h, subject);
    const mail = h.clientAs("mail");
    const sessionId = newSession();
    await denied(mail.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" }));
    const c = await challenge(mail, subject, sessionId, "account.change_email");
    const verified = await mail.stepUp.verify({
      challengeId: c.challengeId,
      subject,
      sessionId,
      action: "account.change_email",
      proof: { kind: { case: "totpCode", value: h.code(secret) } },
      idempotencyKey: newKey(),
    });
    const token = verified.grant?.token ?? "";
    await mail.stepUp.checkGrant({ token, action: "account.change_email" });
    await denied(mail.stepUp.checkGrant({ token, action: "payments.transfer" }));
    await mail.stepUp.endSession({ subject, sessionId });
  });

  it("lets only a managing caller change factors, and a reading one list them", async () => {
    const subject = newSubject();
    for (const caller of ["mail", "reports"]) {
      await denied(h.clientAs(caller).factors.enrollTotp({ subject, label: "Phone", accountName: "a" }));
      await denied(h.clientAs(caller).factors.createRecoveryCodes({ subject }));
    }
    await denied(h.clientAs("mail").factors.listFactors({ subject }));
    assert.deepEqual((await h.clientAs("reports").factors.listFactors({ subject })).factors, []);
    // Nothing was written by the refused calls.
    assert.deepEqual((await h.client.factors.listFactors({ subject })).factors, []);
  });

  it("refuses a caller the policy does not list, except for the public keys", async () => {
    const stranger = h.clientAs("stranger");
    const subject = newSubject();
    await denied(
      stranger.stepUp.stepUp({ subject, sessionId: newSession(), action: "account.change_email" }),
    );
    await denied(stranger.stepUp.endSession({ subject, sessionId: newSession() }));
    await denied(stranger.factors.listFactors({ subject }));
    await denied(h.clientAs("reports").stepUp.endSession({ subject, sessionId: newSession() }));
    assert.ok((await stranger.stepUp.getJwks({})).keys.length >= 1);
  });
});
