// A factor becomes usable only under the authorisation that holds at that moment, whatever
// happened before: a pending enrolment begun before the first factor cannot be confirmed after
// it without a grant, a first factor's confirmation needs a fresh sign-in, an enrolment's grant
// counts only while it is not revoked, and two first factors racing cannot both become active.
// Through the real service (gRPC over loopback, PostgreSQL and Redis).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { subjectTokenHeader } from "@stepgate/api";
import { startTestIdentityProvider, type TestIdentityProvider } from "@stepgate/testkit";
import { expectFailure, failure } from "./support/errors.ts";
import { enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate, subjectProofBlock, testPolicy } from "./support/stepgate.ts";

const withToken = (token: string) => ({ headers: { [subjectTokenHeader]: token } });

/** A management grant for `action`, proved with the TOTP factor whose secret is `secret`. */
async function managementGrant(
  h: Harness,
  subject: string,
  secret: string,
  action: string,
  sessionId = newSession(),
) {
  h.clock.advance(30_000);
  const res = await h.client.stepUp.stepUp({ subject, sessionId, action });
  if (res.outcome.case === "grant") return res.outcome.value.token;
  assert.equal(res.outcome.case, "challenge");
  const verified = await h.client.stepUp.verify({
    challengeId: res.outcome.value.challengeId,
    ...{ subject, sessionId, action },
    proof: { kind: { case: "totpCode", value: h.code(secret) } },
    idempotencyKey: newKey(),
  });
  return verified.grant?.token ?? "";
}

const pendingEnrolment = (
  h: Harness,
  subject: string,
  grant = "",
  options?: { headers: Record<string, string> },
) => h.client.factors.enrollTotp({ subject, label: "Phone", accountName: "a@example.com", grant }, options);

const statuses = async (h: Harness, subject: string) =>
  Object.fromEntries(
    (await h.client.factors.listFactors({ subject })).factors.map((f) => [f.factorId, f.status]),
  );

describe("factor authorisation at the moment a factor becomes usable", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate();
  });
  after(async () => {
    await h?.close();
  });

  it("refuses to confirm, without a grant, an enrolment begun before the subject's first factor", async () => {
    const subject = newSubject();
    const planted = await pendingEnrolment(h, subject);
    const own = await enrolTotp(h, subject);
    await expectFailure(pendingEnrolment(h, subject), Code.PermissionDenied, "GRANT_REQUIRED");
    const confirm = (grant = "") =>
      h.client.factors.confirmTotp({
        subject,
        factorId: planted.factorId,
        code: h.code(planted.secret),
        grant,
      });
    await expectFailure(confirm(), Code.PermissionDenied, "GRANT_REQUIRED");
    const listed = await statuses(h, subject);
    assert.equal(listed[own.factorId], 2, "the user's factor is active");
    assert.equal(listed[planted.factorId], 1, "the planted one stays pending");
    // Its code answers nothing.
    const sessionId = newSession();
    const res = await h.client.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" });
    assert.equal(res.outcome.case, "challenge");
    const f = await failure(
      h.client.stepUp.verify({
        challengeId: res.outcome.value.challengeId,
        ...{ subject, sessionId, action: "payments.transfer" },
        proof: { kind: { case: "totpCode", value: h.code(planted.secret) } },
        idempotencyKey: newKey(),
      }),
    );
    assert.ok(f.reason === "WRONG_CODE" || f.reason === "CODE_REPLAYED", `refused, ${f.reason}`);
    // With a fresh grant, sent at confirmation, the user may still confirm it.
    const grant = await managementGrant(h, subject, own.secret, "stepgate.enroll_totp");
    await confirm(grant);
    assert.equal((await statuses(h, subject))[planted.factorId], 2);
  });

  it("lets two racing first factors produce one active factor", async () => {
    for (let round = 0; round < 5; round++) {
      const subject = newSubject();
      const [a, b] = await Promise.all([pendingEnrolment(h, subject), pendingEnrolment(h, subject)]);
      const results = await Promise.allSettled([
        h.client.factors.confirmTotp({ subject, factorId: a.factorId, code: h.code(a.secret) }),
        h.client.factors.confirmTotp({ subject, factorId: b.factorId, code: h.code(b.secret) }),
        h.client.factors.createRecoveryCodes({ subject }),
      ]);
      assert.equal(results.filter((r) => r.status === "fulfilled").length, 1, `round ${round}`);
      const active = Object.values(await statuses(h, subject)).filter((s) => s === 2);
      assert.equal(active.length, 1);
      for (const r of results) {
        if (r.status === "rejected") assert.match(String(r.reason), /GRANT_REQUIRED|grant for/);
      }
    }
  });

  it("counts the grant an enrolment spent only while it is not revoked", async () => {
    const subject = newSubject();
    const first = await enrolTotp(h, subject);
    const second = await enrolTotp(
      h,
      subject,
      h.client,
      await managementGrant(h, subject, first.secret, "stepgate.enroll_totp"),
    );
    // Authorised by a grant from `first`'s proof; `first` is then removed: that grant is revoked.
    const grant = await managementGrant(h, subject, first.secret, "stepgate.enroll_totp");
    const pending = await pendingEnrolment(h, subject, grant);
    const removal = await managementGrant(h, subject, second.secret, "stepgate.remove_factor");
    await h.client.factors.removeFactor({ subject, factorId: first.factorId, grant: removal });
    const confirm = (g = "") =>
      h.client.factors.confirmTotp({
        subject,
        factorId: pending.factorId,
        code: h.code(pending.secret),
        grant: g,
      });
    await expectFailure(confirm(), Code.PermissionDenied, "GRANT_REVOKED");
    // An unrevoked enrolment grant needs nothing more.
    const sessionId = newSession();
    const another = await pendingEnrolment(
      h,
      subject,
      await managementGrant(h, subject, second.secret, "stepgate.enroll_totp", sessionId),
    );
    await h.client.factors.confirmTotp({ subject, factorId: another.factorId, code: h.code(another.secret) });
    // Nor does an ended session's enrolment grant count.
    const third = await pendingEnrolment(
      h,
      subject,
      await managementGrant(h, subject, second.secret, "stepgate.enroll_totp", newSession()),
    );
    const ending = newSession();
    const fourth = await pendingEnrolment(
      h,
      subject,
      await managementGrant(h, subject, second.secret, "stepgate.enroll_totp", ending),
    );
    await h.client.stepUp.endSession({ subject, sessionId: ending });
    await expectFailure(
      h.client.factors.confirmTotp({ subject, factorId: fourth.factorId, code: h.code(fourth.secret) }),
      Code.PermissionDenied,
      "GRANT_REVOKED",
    );
    await h.client.factors.confirmTotp({ subject, factorId: third.factorId, code: h.code(third.secret) });
  });

  it("answers a confirmation sent again after it succeeded with the factor, and nothing else", async () => {
    const subject = newSubject();
    const enrolled = await pendingEnrolment(h, subject);
    const code = h.code(enrolled.secret);
    const confirm = (c: string) =>
      h.client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: c });
    const first = await confirm(code);
    const again = await confirm(code);
    assert.equal(again.factor?.factorId, first.factor?.factorId);
    assert.equal(again.factor?.status, 2);
    const other = code === "000000" ? "000001" : "000000";
    await expectFailure(confirm(other), Code.FailedPrecondition, "FACTOR_STATE");
  });
});

describe("a first factor's confirmation needs a fresh sign-in", () => {
  const firstFactorMaxAge = 600;
  let idp: TestIdentityProvider;
  let h: Harness;
  before(async () => {
    idp = await startTestIdentityProvider();
    h = await startStepgate({
      policy: `${testPolicy}
callers:
  payments: { actions: ["*"], factors: manage, subject_proof: required }
${subjectProofBlock(idp, firstFactorMaxAge)}`,
    });
  });
  after(async () => {
    await h?.close();
    await idp?.close();
  });
  const signedIn = (sub: string, agoSeconds: number) =>
    idp.token({ sub, auth_time: Math.floor(h.clock.now() / 1000) - agoSeconds });

  it("refuses a confirmation whose sign-in is two hours old, and one after the first factor", async () => {
    const subject = newSubject();
    const planted = await pendingEnrolment(h, subject, "", withToken(await signedIn(subject, 10)));
    const confirmPlanted = async (agoSeconds: number) =>
      h.client.factors.confirmTotp(
        { subject, factorId: planted.factorId, code: h.code(planted.secret) },
        withToken(await signedIn(subject, agoSeconds)),
      );
    await expectFailure(confirmPlanted(7200), Code.Unauthenticated, "SUBJECT_PROOF_STALE");
    // The user's own first factor, confirmed on a fresh sign-in.
    const own = await pendingEnrolment(h, subject, "", withToken(await signedIn(subject, 5)));
    await h.client.factors.confirmTotp(
      { subject, factorId: own.factorId, code: h.code(own.secret) },
      withToken(await signedIn(subject, 5)),
    );
    await expectFailure(confirmPlanted(5), Code.PermissionDenied, "GRANT_REQUIRED");
    const listed = (await h.client.factors.listFactors({ subject }, withToken(await signedIn(subject, 5))))
      .factors;
    assert.deepEqual(
      listed.map((f) => [f.factorId, f.status]).sort(),
      [
        [own.factorId, 2],
        [planted.factorId, 1],
      ].sort(),
    );
  });
});
