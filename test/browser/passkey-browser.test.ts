// Passkeys in a real browser: the payments example (examples/payments) in headless Chromium with the
// DevTools virtual authenticator, against three replica processes. A user-verifying, device-bound
// authenticator enrols and approves a transfer at aal3; one without user verification enrols, and
// its approval is refused by the browser and, when the page asks without UV, by Stepgate; and with
// PostgreSQL stopped, a passkey still approves from the encrypted factor cache.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { FactorStatus, Method } from "@stepgate/api";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import {
  type ExecutedTransfer,
  type PaymentsWeb,
  startPaymentsWeb,
} from "@stepgate/example-payments/web-server";
import { freePort } from "@stepgate/testkit/free-port";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import type { Page } from "playwright-core";
import {
  type Chromium,
  closeChromium,
  launchChromium,
  pageWithAuthenticator,
  press,
  type VirtualAuthenticator,
} from "../support/chromium.ts";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { writePolicy } from "../support/stepgate.ts";

const artifacts = join(import.meta.dirname, "../../test-artifacts");
const action = "payments.transfer";

const policyFor = (origin: string) => `
levels: [aal1, aal2, aal3]
methods:
  passkey: { acr: aal2, device_bound_acr: aal3 }
challenge: { ttl: 60, max_attempts: 5 }
lockout: { max_failures: 8, duration: 60 }
grant_ttl: 120
webauthn: { rp_id: localhost, rp_name: Payments example, origins: ["${origin}"] }
actions:
  ${action}: { acr: aal2, max_age: 300, methods: [passkey], passkey: { user_verification: required } }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`;

describe("passkeys in headless Chromium through the payments example", () => {
  let cluster: Cluster | undefined;
  let web: PaymentsWeb | undefined;
  let browser: Chromium | undefined;
  let client: StepgateClient | undefined;
  // A PostgreSQL of the test's own, which the last case stops.
  let postgres: OwnPostgres | undefined;
  const approvals: ExecutedTransfer[] = [];

  before(async () => {
    const port = await freePort();
    // The page's origin must be `localhost`: a secure context over http, and the RP id.
    postgres = await startOwnPostgres();
    cluster = await startCluster({
      size: 3,
      databaseServerUrl: postgres.url,
      env: {
        STEPGATE_POLICY_FILE: writePolicy(policyFor(`http://localhost:${port}`)),
        STEPGATE_HEALTH_INTERVAL_MS: "100",
      },
    });
    web = await startPaymentsWeb({
      port,
      stepgateTargets: cluster.replicas.map((r) => r.address),
      caller: "payments",
      onTransfer: (t) => approvals.push(t),
    });
    client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    browser = await launchChromium();
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    await closeChromium(browser);
    await web?.close();
    client?.close();
    await postgres?.start().catch(() => {});
    await cluster?.close();
    await postgres?.destroy();
  });

  /** A fresh page on the example with its own virtual authenticator, for a fresh subject. */
  async function openPage(
    authenticator: VirtualAuthenticator,
  ): Promise<{ page: Page; subject: string; session: string }> {
    assert.ok(browser && web);
    const page = await pageWithAuthenticator(browser.browser, web.url, authenticator);
    const subject = `browser-${randomBytes(6).toString("hex")}`;
    await page.fill("#user", subject);
    return { page, subject, session: await page.inputValue("#session") };
  }

  it("enrols a passkey and approves a transfer at aal3; the grant checks offline", {
    timeout: 60_000,
  }, async () => {
    assert.ok(client);
    const { page, subject, session } = await openPage({ hasUserVerification: true, isUserVerified: true });
    assert.deepEqual(await press(page, "#enrol"), { kind: "ok", text: "Passkey enrolled" });
    const [factor, ...others] = (await client.factors.listFactors({ subject })).factors;
    assert.equal(others.length, 0);
    assert.equal(factor?.method, Method.PASSKEY);
    assert.equal(factor?.status, FactorStatus.ACTIVE);

    const verifyAnswer = page.waitForResponse((r) => r.url().endsWith("/api/step-up/verify"));
    assert.equal((await press(page, "#send")).kind, "stepup");
    // Device-bound (not backup-eligible) and user-verified: the policy's device_bound_acr.
    assert.deepEqual(await press(page, "#approve-passkey"), {
      kind: "ok",
      text: "Transfer sent: aal3 hwk user mfa",
    });
    await page.screenshot({ path: join(artifacts, "passkey-approval.png"), fullPage: true });
    // The grant stays with the server: the page gets the outcome, never the token.
    const answered = (await (await verifyAnswer).json()) as Record<string, unknown>;
    assert.equal(answered.status, "sent");
    assert.equal(answered.token, undefined);
    assert.doesNotMatch(JSON.stringify(answered), /eyJ/);

    const approval = approvals.find((a) => a.subject === subject);
    assert.ok(approval, "the example reported the approval");
    // The guard admitted the transfer with a grant checked offline for this session.
    assert.equal(approval.grant.sessionId, session);
    assert.equal(approval.grant.acr, "aal3");
    assert.deepEqual(approval.grant.amr, ["hwk", "user", "mfa"]);
    assert.equal(approval.grant.checkedOnline, false);
    assert.equal(approval.grant.factorId, factor?.factorId);
    assert.equal(answered.transferId, approval.transferId);
    await page.close();
  });

  it("refuses a transfer from a passkey without user verification", { timeout: 60_000 }, async () => {
    assert.ok(client);
    const { page, subject, session } = await openPage({ hasUserVerification: false, isUserVerified: false });
    // The creation options only prefer user verification, so such a passkey enrols.
    assert.deepEqual(await press(page, "#enrol"), { kind: "ok", text: "Passkey enrolled" });

    // Asked as Stepgate asks (userVerification: required), the browser itself declines.
    assert.equal((await press(page, "#send")).kind, "stepup");
    assert.deepEqual(await press(page, "#approve-passkey"), {
      kind: "error",
      text: "Transfer refused: NotAllowedError from the browser",
    });
    // A page that asks without user verification (altered, or out of date) gets an assertion with
    // the UV flag clear, and Stepgate refuses it: the rule is the server's, not the page's.
    await page.route("**/api/transfers", async (route) => {
      const response = await route.fetch();
      const json = (await response.json()) as {
        challenge?: { passkeyRequestOptions?: { userVerification?: string } };
      };
      if (json.challenge?.passkeyRequestOptions)
        json.challenge.passkeyRequestOptions.userVerification = "discouraged";
      await route.fulfill({ response, json });
    });
    assert.equal((await press(page, "#send")).kind, "stepup");
    assert.deepEqual(await press(page, "#approve-passkey"), {
      kind: "error",
      text: "Transfer refused: PASSKEY_REFUSED (user_verification_missing)",
    });
    await page.screenshot({ path: join(artifacts, "passkey-refusal.png"), fullPage: true });

    assert.equal(
      approvals.find((a) => a.subject === subject),
      undefined,
    );
    // Nothing was elevated: the session still faces a challenge.
    const again = await client.stepUp.stepUp({ subject, sessionId: session, action });
    assert.equal(again.outcome.case, "challenge");
    await page.close();
  });

  it("approves with a passkey while PostgreSQL is down, from the encrypted factor cache", {
    timeout: 60_000,
  }, async () => {
    assert.ok(client && cluster && postgres);
    const { page, subject } = await openPage({ hasUserVerification: true, isUserVerified: true });
    assert.deepEqual(await press(page, "#enrol"), { kind: "ok", text: "Passkey enrolled" });
    await postgres.stop("SIGQUIT");
    // Every replica has seen PostgreSQL go (its health probe runs every 100 ms).
    for (const replica of cluster.replicas) await loggedDown(replica.lines);
    assert.equal((await press(page, "#send")).kind, "stepup");
    assert.deepEqual(await press(page, "#approve-passkey"), {
      kind: "ok",
      text: "Transfer sent: aal3 hwk user mfa",
    });
    assert.ok(approvals.some((a) => a.subject === subject && a.grant.acr === "aal3"));
    await page.close();
    await postgres.start();
  });
});

/** Waits (at most 10 s) until a replica's log says PostgreSQL is down. */
async function loggedDown(lines: string[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (lines.some((l) => l.includes('"dependency down"') && l.includes('"postgresql"'))) return;
    await sleep(50);
  }
  assert.fail("no replica logged PostgreSQL down");
}
