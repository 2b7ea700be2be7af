// The revocation feed through a real replica (PostgreSQL, Redis, gRPC on loopback): what an offline
// verifier learns of EndSession, factor removal and consumed single-use grants, how it resumes from
// a cursor, and the bad input WatchRevocations refuses.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { callerHeader, RevocationFeedService, RevocationKind } from "@stepgate/api";
import { createStepgateClient, GrantError } from "@stepgate/client";
import { sessionRevocationKey } from "@stepgate/grant";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { enrolTotp, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const action = "payments.transfer";

/** Waits until `check` holds, polling every 10 ms for at most `ms`; returns how long it took. */
async function within(ms: number, check: () => Promise<boolean> | boolean): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < ms) {
    if (await check()) return Date.now() - started;
    await sleep(10);
  }
  assert.fail(`not within ${ms} ms`);
}

const refusedOffline = async (p: Promise<unknown>) => {
  try {
    await p;
    return false;
  } catch (error) {
    return error instanceof GrantError && error.reason === "GRANT_REVOKED";
  }
};

describe("the revocation feed", () => {
  let h: Harness;
  let channel: grpc.Channel;
  before(async () => {
    h = await startStepgate();
    channel = new grpc.Channel(h.target, grpc.credentials.createInsecure(), {});
  });
  after(async () => {
    channel.close();
    await h.close();
  });
  const feed = () => createClient(RevocationFeedService, createGrpcJsTransport({ channel }));
  const asPayments = { headers: { [callerHeader]: "payments" } };

  /** A subject with a TOTP factor, a session elevated for `action`, and a grant for it. */
  async function elevated() {
    const subject = newSubject();
    const sessionId = newSession();
    const { factorId, secret } = await enrolTotp(h, subject);
    const verified = await stepUpWithTotp(h, subject, sessionId, action, secret);
    return { subject, sessionId, factorId, secret, token: verified.grant?.token ?? "" };
  }

  it("refuses a grant offline once its session is ended, within the feed's poll", async () => {
    const { subject, sessionId, token } = await elevated();
    const expect = { action, subject, sessionId };
    assert.equal((await h.client.verifyGrant(token, expect)).sub, subject);
    assert.equal(h.client.revocationFeed()?.synced, true);
    await h.client.stepUp.endSession({ subject, sessionId });
    const ms = await within(2000, () => refusedOffline(h.client.verifyGrant(token, expect)));
    console.log(`# EndSession to offline refusal: ${ms} ms`);
  });

  it("refuses grants of a removed factor offline", async () => {
    const { subject, sessionId, factorId, secret, token } = await elevated();
    h.clock.advance(30_000);
    const management = await stepUpWithTotp(h, subject, newSession(), "stepgate.remove_factor", secret);
    await h.client.factors.removeFactor({ subject, factorId, grant: management.grant?.token ?? "" });
    await within(2000, () => refusedOffline(h.client.verifyGrant(token, { action, subject, sessionId })));
  });

  it("tells verifiers that accept single-use grants offline when one was consumed", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { secret } = await enrolTotp(h, subject);
    const verified = await stepUpWithTotp(h, subject, sessionId, "secrets.read", secret);
    const token = verified.grant?.token ?? "";
    const expect = { action: "secrets.read", allowSingleUse: true };
    await h.client.verifyGrant(token, expect);
    await h.client.stepUp.checkGrant({ token, action: "secrets.read" });
    await within(2000, () => refusedOffline(h.client.verifyGrant(token, expect)));
  });

  it("delivers every revocation once, in cursor order, and resumes after the last cursor seen", async () => {
    const first = feed().watchRevocations({}, asPayments);
    let start = "";
    for await (const message of first) {
      if (message.caughtUp) {
        start = message.cursor;
        break;
      }
    }
    const sessions = Array.from({ length: 12 }, () => ({ subject: newSubject(), sessionId: newSession() }));
    for (const s of sessions.slice(0, 6)) await h.client.stepUp.endSession(s);
    // Read the first six, then hang up.
    const seen: { cursor: bigint; target: string }[] = [];
    let resumeAt = start;
    for await (const message of feed().watchRevocations({ cursor: start }, asPayments)) {
      for (const r of message.revocations) {
        assert.equal(r.kind, RevocationKind.SESSION_ENDED);
        seen.push({ cursor: BigInt(r.cursor), target: r.target });
      }
      resumeAt = message.cursor;
      if (seen.length >= 6) break;
    }
    for (const s of sessions.slice(6)) await h.client.stepUp.endSession(s);
    for await (const message of feed().watchRevocations({ cursor: resumeAt }, asPayments)) {
      for (const r of message.revocations) seen.push({ cursor: BigInt(r.cursor), target: r.target });
      if (seen.length >= 12) break;
    }
    assert.deepEqual(
      seen.map((s) => s.target),
      sessions.map((s) => sessionRevocationKey(s.subject, s.sessionId)),
      "each session's end once, in the order they were ended",
    );
    const cursors = seen.map((s) => s.cursor);
    assert.deepEqual(
      [...cursors].sort((a, b) => (a < b ? -1 : 1)),
      cursors,
      "cursors rise",
    );
    // No event names a subject in the clear.
    assert.ok(seen.every((s) => sessions.every((x) => !s.target.includes(x.subject))));
  });

  it("a verifier started after a revocation learns it before its first check", async () => {
    const { subject, sessionId, token } = await elevated();
    await h.client.stepUp.endSession({ subject, sessionId });
    const late = createStepgateClient({ target: h.target, caller: "payments", now: h.clock.now });
    try {
      await assert.rejects(
        late.verifyGrant(token, { action, subject, sessionId }),
        (error: unknown) => error instanceof GrantError && error.reason === "GRANT_REVOKED",
      );
    } finally {
      late.close();
    }
  });

  it("without the feed a grant is valid until exp; a stale feed checks online, fails closed or keeps verifying", async () => {
    const revoked = await elevated();
    await h.client.stepUp.endSession({ subject: revoked.subject, sessionId: revoked.sessionId });
    const valid = await elevated();
    const expectFor = (g: { subject: string; sessionId: string }) => ({
      action,
      subject: g.subject,
      sessionId: g.sessionId,
    });
    const off = createStepgateClient({
      target: h.target,
      caller: "payments",
      now: h.clock.now,
      revocationFeed: { enabled: false },
    });
    // staleAfterMs 0: the feed is always stale, so each rule is what decides.
    const stale = (whenStale: "check-online" | "fail-closed" | "keep-verifying") =>
      createStepgateClient({
        target: h.target,
        caller: "payments",
        now: h.clock.now,
        revocationFeed: { whenStale, staleAfterMs: 0 },
      });
    const online = stale("check-online");
    const closed = stale("fail-closed");
    const keep = stale("keep-verifying");
    const isRevoked = (e: unknown) => e instanceof GrantError && e.reason === "GRANT_REVOKED";
    try {
      assert.equal(h.client.revocationFeed()?.stale, false);
      assert.equal(off.revocationFeed(), undefined);
      assert.equal((await off.verifyGrant(revoked.token, expectFor(revoked))).sub, revoked.subject);
      assert.equal((await online.verifyGrant(valid.token, expectFor(valid))).sub, valid.subject);
      await assert.rejects(online.verifyGrant(revoked.token, expectFor(revoked)), isRevoked);
      assert.equal(online.revocationFeed()?.stale, true);
      await assert.rejects(closed.verifyGrant(valid.token, expectFor(valid)), /revocation feed stale/);
      // A revocation the feed did bring is refused whatever the rule.
      await assert.rejects(closed.verifyGrant(revoked.token, expectFor(revoked)), isRevoked);
      assert.equal((await keep.verifyGrant(valid.token, expectFor(valid))).sub, valid.subject);
      await assert.rejects(keep.verifyGrant(revoked.token, expectFor(revoked)), isRevoked);
    } finally {
      for (const c of [off, online, closed, keep]) c.close();
    }
  });

  it("refuses bad input with a clear status", async () => {
    const open = async (
      request: { cursor?: string },
      headers: Record<string, string> = asPayments.headers,
    ) => {
      try {
        for await (const _ of feed().watchRevocations(request, { headers })) return undefined;
      } catch (error) {
        return error instanceof ConnectError ? error.code : error;
      }
      return undefined;
    };
    assert.equal(await open({ cursor: "abc" }), Code.InvalidArgument, "not a number");
    assert.equal(await open({ cursor: "-1" }), Code.InvalidArgument, "negative");
    assert.equal(await open({ cursor: "1".repeat(20) }), Code.InvalidArgument, "too long");
    assert.equal(await open({ cursor: "9999999999999999999" }), Code.InvalidArgument, "beyond bigint");
    assert.equal(
      await open({ cursor: "x".repeat(100_000) }),
      Code.ResourceExhausted,
      "larger than any request",
    );
    assert.equal(await open({}, {}), Code.Unauthenticated, "no caller");
    assert.equal(
      await open({}, { [callerHeader]: "Not A Caller!" }),
      Code.Unauthenticated,
      "malformed caller",
    );
    // A cursor far ahead of the feed is valid: it waits for events past it.
    assert.equal(await open({ cursor: "123456789" }), undefined);
  });
});
