// The revocation feed with PostgreSQL down (its own server, stopped with SIGQUIT): EndSession still
// revokes (Redis, the audit outbox), the feed's heartbeats show the lag growing, a verifier whose
// feed went stale checks online and refuses, and once PostgreSQL is back the deferred event reaches
// the feed, so even a verifier that keeps verifying offline refuses the grant.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, GrantError, type StepgateClient } from "@stepgate/client";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { enrolTotp, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const action = "payments.transfer";

describe("the revocation feed with PostgreSQL down", () => {
  let postgres: OwnPostgres;
  let h: Harness;
  const clients: StepgateClient[] = [];
  before(async () => {
    postgres = await startOwnPostgres();
    h = await startStepgate({ databaseServerUrl: postgres.url, healthIntervalMs: 100 });
  });
  after(async () => {
    for (const c of clients) c.close();
    await postgres.start().catch(() => {});
    await h.close();
    await postgres.destroy();
  });
  const verifier = (whenStale: "check-online" | "keep-verifying") => {
    const c = createStepgateClient({
      target: h.target,
      caller: "payments",
      now: h.clock.now,
      revocationFeed: { whenStale, staleAfterMs: 1500 },
    });
    clients.push(c);
    return c;
  };

  it("revokes during the outage, online at once and through the feed once PostgreSQL is back", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { secret } = await enrolTotp(h, subject);
    const token = (await stepUpWithTotp(h, subject, sessionId, action, secret)).grant?.token ?? "";
    const expect = { action, subject, sessionId };
    const online = verifier("check-online");
    const offline = verifier("keep-verifying");
    assert.equal((await online.verifyGrant(token, expect)).sub, subject);
    assert.equal((await offline.verifyGrant(token, expect)).sub, subject);
    await postgres.stop("SIGQUIT");
    await h.client.stepUp.endSession({ subject, sessionId });
    // The replica cannot read the feed's source: heartbeats go on, the lag grows past 1.5 s.
    for (let i = 0; i < 100 && online.revocationFeed()?.stale !== true; i++) await sleep(50);
    assert.equal(online.revocationFeed()?.stale, true, "the feed looks stale, not silent");
    await assert.rejects(
      online.verifyGrant(token, expect),
      (e: unknown) => e instanceof GrantError && e.reason === "GRANT_REVOKED",
      "a stale feed sends the check online, where Redis knows the end",
    );
    assert.equal((await offline.verifyGrant(token, expect)).sub, subject, "offline alone cannot know yet");
    await postgres.start();
    let refusedAfterMs: number | undefined;
    const started = Date.now();
    while (refusedAfterMs === undefined && Date.now() - started < 20_000) {
      try {
        await offline.verifyGrant(token, expect);
        await sleep(50);
      } catch (error) {
        assert.ok(error instanceof GrantError && error.reason === "GRANT_REVOKED");
        refusedAfterMs = Date.now() - started;
      }
    }
    assert.ok(
      refusedAfterMs !== undefined,
      "the deferred revocation reached the feed once PostgreSQL was back",
    );
    console.log(`# PostgreSQL restarted -> deferred revocation refused offline: ${refusedAfterMs} ms`);
    assert.equal(offline.revocationFeed()?.stale, false);
  });
});
