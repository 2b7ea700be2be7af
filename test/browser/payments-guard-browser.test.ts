// The payments example as a person uses it, in headless Chromium against three replica processes
// with the example policy (services/stepgate/policy/example.yaml): a transfer without a factor is
// refused until one is enrolled; an authenticator app is added from the QR code's key; a transfer
// to a payee never paid is refused by the guard with STEP_UP_REQUIRED under the policy's rule
// new_payee (max_age 0), approved with a TOTP code and goes through; a second one to the same payee
// goes through on the session's approval (max_age 300); a high-value transfer is approved with a
// passkey for that transaction only, and sending it again with the same grant is refused (single use).
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type ExecutedTransfer,
  type PaymentsWeb,
  startPaymentsWeb,
} from "@stepgate/example-payments/web-server";
import type { GuardDecision } from "@stepgate/guard";
import { freePort } from "@stepgate/testkit/free-port";
import { totpCode } from "@stepgate/testkit/totp-code";
import type { Page } from "playwright-core";
import {
  type Chromium,
  closeChromium,
  launchChromium,
  pageWithAuthenticator,
  press,
} from "../support/chromium.ts";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { writePolicy } from "../support/stepgate.ts";

const artifacts = join(import.meta.dirname, "../../test-artifacts");
const examplePolicy = readFileSync(
  join(import.meta.dirname, "../../services/stepgate/policy/example.yaml"),
  "utf8",
);

describe("the payments example in headless Chromium: guard, step-up, single use", () => {
  let cluster: Cluster | undefined;
  let web: PaymentsWeb | undefined;
  let browser: Chromium | undefined;
  const transfers: ExecutedTransfer[] = [];
  const decisions: GuardDecision[] = [];

  before(async () => {
    const port = await freePort();
    // The example policy as it ships, with this run's origin for passkeys.
    const policy = examplePolicy.replace("http://localhost:8088", `http://localhost:${port}`);
    assert.notEqual(policy, examplePolicy, "the example policy names the page's origin");
    cluster = await startCluster({ size: 3, env: { STEPGATE_POLICY_FILE: writePolicy(policy) } });
    web = await startPaymentsWeb({
      port,
      stepgateTargets: cluster.replicas.map((r) => r.address),
      caller: "payments",
      onTransfer: (t) => transfers.push(t),
      onDecision: (d) => decisions.push(d),
    });
    browser = await launchChromium();
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await closeChromium(browser);
    await web?.close();
    await cluster?.close();
  });

  /** Sets the transfer form and presses Send; returns the status and the API's answer. */
  async function send(page: Page, amount: string) {
    await page.fill("#amount", amount);
    const answer = page.waitForResponse((r) => r.url().endsWith("/api/transfers"));
    const status = await press(page, "#send");
    const response = await answer;
    return { status, http: response.status(), body: (await response.json()) as Record<string, unknown> };
  }

  it("refuses, steps up with TOTP and a passkey, reuses within max_age, refuses a spent single-use grant", {
    timeout: 90_000,
  }, async () => {
    assert.ok(browser && web);
    const page = await pageWithAuthenticator(browser.browser, web.url, {
      hasUserVerification: true,
      isUserVerified: true,
    });
    const subject = `payer-${randomBytes(6).toString("hex")}`;
    await page.fill("#user", subject);
    const session = await page.inputValue("#session");

    // No factor yet: the guard's StepUp says enrolment is required, and nothing moves.
    const bare = await send(page, "120.00");
    assert.equal(bare.http, 401);
    assert.equal(bare.body.error, "STEP_UP_REQUIRED");
    assert.ok(bare.body.enrollmentRequired, "enrolment required");
    assert.match(bare.status.text, /^Add a second factor first/);

    // The authenticator app: the QR code and its key are shown once; the app's code confirms it.
    assert.deepEqual(await press(page, "#enrol-totp"), {
      kind: "ok",
      text: "Scan the QR code, then confirm with a code",
    });
    assert.match((await page.getAttribute("#totp-qr", "src")) ?? "", /^data:image\/png;base64,/);
    const secret = (await page.textContent("#totp-secret")) ?? "";
    assert.match(secret, /^[A-Z2-7]{16,}$/);
    const now = () => Math.floor(Date.now() / 1000);
    await page.fill("#totp-code", totpCode(secret, now()));
    assert.deepEqual(await press(page, "#confirm-totp"), { kind: "ok", text: "Authenticator app added" });

    // A transfer without a grant: refused with the structured error, which the page turns into its approval panel.
    const refused = await send(page, "120.00");
    assert.equal(refused.http, 401);
    assert.equal(refused.body.error, "STEP_UP_REQUIRED");
    assert.equal(refused.body.action, "payments.transfer");
    assert.deepEqual(refused.body.acrValues, ["aal2"]);
    // A payee this subject never paid: the example policy's rule new_payee asks for every transfer.
    assert.equal(refused.body.maxAge, 0);
    assert.equal(refused.body.rule, "new_payee");
    assert.equal(refused.body.grantRefusal, "GRANT_MISSING");
    assert.equal(refused.status.kind, "stepup");
    assert.equal(await page.textContent("#approval-summary"), "Send 120.00 EUR to ACME Ltd from DE-001");
    assert.equal(
      await page.textContent("#approval-need"),
      "Needs aal2, for this transfer only (policy rule new_payee)",
    );
    assert.equal(transfers.length, 0);

    // The next time step's code: the one that confirmed the app is spent (RFC 6238 §5.2).
    await page.fill("#approval-code", totpCode(secret, now() + 30));
    assert.deepEqual(await press(page, "#approve-code"), { kind: "ok", text: "Transfer sent: aal2 otp" });
    assert.equal(transfers.length, 1);
    assert.equal(transfers[0]?.subject, subject);
    assert.equal(transfers[0]?.sessionId, session);
    assert.equal(transfers[0]?.grant.checkedOnline, true, "max_age 0: a single-use grant, consumed");

    // The payee is known now: the action's own max_age 300 applies, and the session's approval covers it.
    const second = await send(page, "50.00");
    assert.deepEqual(second.status, { kind: "ok", text: "Transfer sent: aal2 otp" });
    assert.equal(transfers.length, 2);
    assert.equal(transfers[1]?.grant.checkedOnline, false);

    // A passkey, enrolled on the session's fresh elevation (stepgate.enroll_passkey, max_age 300).
    assert.deepEqual(await press(page, "#enrol"), { kind: "ok", text: "Passkey enrolled" });

    // High value: aal3 from a device-bound, user-verified passkey, for this transaction only.
    const high = await send(page, "5000.00");
    assert.equal(high.http, 401);
    assert.equal(high.body.action, "payments.high_value");
    assert.deepEqual(high.body.acrValues, ["aal3"]);
    assert.equal(high.body.maxAge, 0);
    // The session's grant was for payments.transfer.
    assert.equal(high.body.grantRefusal, "GRANT_MISMATCH");
    assert.match((await page.textContent("#approval-summary")) ?? "", /5000(\.00)? EUR.*ACME Ltd/);
    assert.equal(await page.textContent("#approval-need"), "Needs aal3, for this transfer only");
    assert.equal(await page.isVisible("#approval-totp"), false, "TOTP does not reach aal3");
    assert.deepEqual(await press(page, "#approve-passkey"), {
      kind: "ok",
      text: "Transfer sent: aal3 hwk user mfa",
    });
    await page.screenshot({ path: join(artifacts, "payments-approved.png"), fullPage: true });
    const highValue = transfers.filter((t) => t.action === "payments.high_value");
    assert.equal(highValue.length, 1);
    assert.equal(highValue[0]?.grant.checkedOnline, true, "a single-use grant is consumed with CheckGrant");

    // The same transfer again with the same grant: spent, so the guard asks again.
    const again = await send(page, "5000.00");
    assert.equal(again.http, 401);
    assert.equal(again.body.grantRefusal, "GRANT_CONSUMED");
    assert.equal(again.status.kind, "stepup");
    assert.equal(
      await page.textContent("#approval-reason"),
      "Your last approval was for one transfer only and has been used.",
    );
    await page.screenshot({ path: join(artifacts, "payments-single-use-refused.png"), fullPage: true });
    assert.equal(transfers.filter((t) => t.action === "payments.high_value").length, 1);

    const outcomes = decisions.map((d) => `${d.action}:${d.outcome}:${d.grantRefusal ?? ""}`);
    assert.deepEqual(outcomes, [
      "payments.transfer:step_up_required:GRANT_MISSING",
      "payments.transfer:step_up_required:GRANT_MISSING",
      "payments.transfer:admitted:",
      "payments.transfer:admitted:GRANT_CONSUMED",
      "payments.high_value:step_up_required:GRANT_MISMATCH",
      "payments.high_value:admitted:",
      "payments.high_value:step_up_required:GRANT_CONSUMED",
    ]);
    await page.close();
  });
});
