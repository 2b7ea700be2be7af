// Debian's Chromium for browser tests, driven by playwright-core (which never downloads a browser),
// with the DevTools virtual authenticator standing in for a platform passkey.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type Browser, chromium, type Page } from "playwright-core";

export const chromiumPath = "/usr/bin/chromium";
// Every wait in a page is bounded by this (ms); a ceremony with the virtual authenticator takes well under 1 s.
export const pageWaitMs = 10_000;

/** A running headless Chromium and the PID of its browser process (for `closeChromium`). */
export interface Chromium {
  browser: Browser;
  pid: number;
}

/** What the CDP virtual authenticator can do: a platform passkey with or without user verification. */
export type VirtualAuthenticator = { hasUserVerification: boolean; isUserVerified: boolean };

/** Launches headless Chromium; fails, never skips, when the browser is not installed. */
export async function launchChromium(): Promise<Chromium> {
  if (!existsSync(chromiumPath)) throw new Error(`${chromiumPath} is missing: apt-get install chromium`);
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    timeout: pageWaitMs,
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
  const pid = info.processInfo.find((p) => p.type === "browser")?.id;
  assert.ok(pid, "the browser's PID, for closeChromium()");
  return { browser, pid };
}

/** Closes the browser, or kills its process group when it does not close within 5 s. */
export async function closeChromium(chromium: Chromium | undefined): Promise<void> {
  if (!chromium) return;
  const closed = await Promise.race([
    chromium.browser.close().then(
      () => true,
      () => false,
    ),
    // Unreferenced: a pending timer must not hold the test process open after a prompt close.
    sleep(5000, false, { ref: false }),
  ]);
  // Only a browser that did not close: its PID is then still its own, the leader of its process group.
  if (!closed) {
    try {
      process.kill(-chromium.pid, "SIGKILL");
    } catch {}
  }
}

/** A new page at `url` with its own virtual authenticator (CTAP2, internal, resident keys). */
export async function pageWithAuthenticator(
  browser: Browser,
  url: string,
  authenticator: VirtualAuthenticator,
): Promise<Page> {
  const page = await browser.newPage();
  page.setDefaultTimeout(pageWaitMs);
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
  await page.goto(url);
  return page;
}

/**
 * Clicks `button` on the payments page and waits for its #status to settle (ok, stepup or error);
 * returns the kind and text. The page marks the status busy while the click is dispatched.
 */
export async function press(page: Page, button: string): Promise<{ kind: string; text: string }> {
  await page.click(button);
  const status = await page.waitForSelector(
    '#status[data-kind="ok"], #status[data-kind="stepup"], #status[data-kind="error"]',
  );
  return { kind: (await status.getAttribute("data-kind")) ?? "", text: (await status.textContent()) ?? "" };
}
