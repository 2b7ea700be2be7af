// Passkeys in a real browser: the payments example (examples/payments) in headless Chromium with the
// DevTools virtual authenticator, against three replica processes. A user-verifying, device-bound
// authenticator enrols and approves a transfer at aal3; one without user verification enrols, and
// its approval is refused by the browser and, when the page asks without UV, by Stepgate; and with
// PostgreSQL stopped, a passkey still approves from the encrypted factor cache.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
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
import { type Browser, chromium, type Page } from "playwright-core";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { writePolicy } from "../support/stepgate.ts";

const chromiumPath = "/usr/bin/chromium";
const artifacts = join(import.meta.dirname, "../../test-artifacts");
const action = "payments.transfer";
// Every wait in the page is bounded by this (ms); a ceremony with the virtual authenticator takes well under 1 s.
const waitMs = 10_000;

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

/** What the CDP virtual authenticator can do: a platform passkey with or without user verification. */
type Authenticator = { hasUserVerification: boolean; isUserVerified: boolean };

describe("passkeys in headless Chromium through the payments example", () => {
  let cluster: Cluster | undefined;
  let web: PaymentsWeb | undefined;
  let browser: Browser | undefined;
  let browserPid: number | undefined;
  let client: StepgateClient | undefined;
  // A PostgreSQL of the test's own, which the last case stops.
  let postgres: OwnPostgres | undefined;
  const approvals: ExecutedTransfer[] = [];

  before(async () => {
    // Fail, not skip: a machine without the browser must not pass this file silently.
    if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium`);
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
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      timeout: waitMs,
      // The closed network refuses Chromium's own connections; these keep it from trying.
      args: [
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    const info = (await (await browser.newBrowserCDPSession()).send("SystemInfo.getProcessInfo")) as {
      processInfo: { type: string; id: number }[];
    };
    browserPid = info.processInfo.find((p) => p.type === "browser")?.id;
    assert.ok(browserPid, "the browser's PID, for after()");
    mkdirSync(artifacts, { recursive: true });
  });

  after(async () => {
    const closed = await Promise.race([
      browser?.close().then(
        () => true,
        () => false,
      ),
      // Unreferenced: a pending timer must not hold the test process open after a prompt close.
      sleep(5000, false, { ref: false }),
    ]);
    // Only a browser that did not close: its PID is then still its own, the leader of its process group.
    if (browser && !closed && browserPid !== undefined) {
      try {
        process.kill(-browserPid, "SIGKILL");
      } catch {}
    }
    await web?.close();
    client?.close();
    await postgres?.start().catch(() => {});
    await cluster?.close();
    await postgres?.destroy();
  });

  /** A fresh page on the example with its own virtual authenticator, for a fresh subject. */
  async function openPage(
    authenticator: Authenticator,
  ): Promise<{ page: Page; subject: string; session: string }> {
    assert.ok(browser && web);
    const page = await browser.newPage();
    page.setDefaultTimeout(waitMs);
    const cdp = await page.context().newCDPSession(page);
    await cdp.send("WebAuthn.enable");
    await cdp.send("WebAuthn.addVirtualAuthenticator", {
      options: {
        protocol: "ctap2",
        transport: "internal",
        hasResidentKey: true,
        automaticPresenceSimulation: true,
        ...authenticator,
      },
    });
    await page.goto(web.url);
    const subject = `browser-${randomBytes(6).toString("hex")}`;
    await page.fill("#user", subject);
    return { page, subject, session: await page.inputValue("#session") };
  }

  /** Clicks `button` and waits for the page's status to settle; returns its kind and text. */
  async function press(page: Page, button: string): Promise<{ kind: string; text: string }> {
    await page.click(button);
    // run() marks the status busy while the click is dispatched, so this waits for the new outcome.
    const status = await page.waitForSelector(
      '#status[data-kind="ok"], #status[data-kind="stepup"], #status[data-kind="error"]',
    );
    return { kind: (await status.getAttribute("data-kind")) ?? "", text: (await status.textContent()) ?? "" };
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
