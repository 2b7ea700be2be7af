import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import { unitStepgate } from "./unit-fixture.ts";

const base = { subject: "alice", sessionId: "s1", caller: "payments", context: {} };
const aal2 = { acr: "aal2", amr: ["otp"], method: "totp" as const };
const seconds = (ms: number) => Math.floor(ms / 1000);

describe("stepUp decisions over elevations (in-memory hot store)", () => {
  it("refuses an unknown action", async () => {
    const u = unitStepgate();
    await assert.rejects(
      u.stepUp({ ...base, action: "nope" }),
      (e) => e instanceof StepgateError && e.reason === "UNKNOWN_ACTION",
    );
  });

  it("says enrolment is required when the subject has no method the action allows", async () => {
    const u = unitStepgate({ enrolled: ["recovery_code"] });
    const outcome = await u.stepUp({ ...base, action: "payments.transfer" });
    assert.deepEqual(outcome, { kind: "enrollment_required", acr: "aal2", maxAge: 300, methods: ["totp"] });
  });

  it("grants from a fresh elevation and challenges once it is older than max_age", async () => {
    const u = unitStepgate();
    const elevation = { ...aal2, authTime: seconds(u.now()) };
    await u.stores.sessions.recordElevation("alice", "s1", elevation, 600_000);
    const fresh = await u.stepUp({ ...base, action: "payments.transfer" });
    assert.equal(fresh.kind, "grant");
    assert.equal(fresh.kind === "grant" && fresh.grant.claims.auth_time, elevation.authTime);
    u.advance(301_000);
    const stale = await u.stepUp({ ...base, action: "payments.transfer" });
    assert.equal(stale.kind, "challenge");
    assert.equal(stale.kind === "challenge" && stale.challenge.acr, "aal2");
  });

  it("never reuses an elevation for max_age 0, and needs a higher level than the one held", async () => {
    const u = unitStepgate();
    await u.stores.sessions.recordElevation("alice", "s1", { ...aal2, authTime: seconds(u.now()) }, 600_000);
    assert.equal((await u.stepUp({ ...base, action: "secrets.read" })).kind, "challenge");
    assert.equal((await u.stepUp({ ...base, action: "admin.root" })).kind, "enrollment_required");
  });

  it("accepts a stronger level than required, and keeps sessions apart", async () => {
    const u = unitStepgate();
    const aal3 = { acr: "aal3", amr: ["hwk"], method: "totp" as const, authTime: seconds(u.now()) };
    await u.stores.sessions.recordElevation("alice", "s1", aal3, 600_000);
    const outcome = await u.stepUp({ ...base, action: "payments.transfer" });
    assert.equal(outcome.kind === "grant" && outcome.grant.claims.acr, "aal3");
    assert.equal(
      (await u.stepUp({ ...base, sessionId: "s2", action: "payments.transfer" })).kind,
      "challenge",
    );
  });

  it("after the session ends, it is ended for good: SESSION_ENDED, no grant from its elevations", async () => {
    const u = unitStepgate();
    await u.stores.sessions.recordElevation("alice", "s1", { ...aal2, authTime: seconds(u.now()) }, 600_000);
    await u.stores.sessions.end("alice", "s1", u.now(), 60_000, ["aal1", "aal2", "aal3"]);
    await assert.rejects(u.stepUp({ ...base, action: "payments.transfer" }), { reason: "SESSION_ENDED" });
    await assert.rejects(u.stepUp({ ...base, action: "secrets.read" }), { reason: "SESSION_ENDED" });
    assert.equal(await u.stores.sessions.endedAt("alice", "s1"), u.now());
    assert.equal(
      (await u.stepUp({ ...base, sessionId: "s2", action: "payments.transfer" })).kind,
      "challenge",
    );
  });

  it("an elevation whose factor was ended grants nothing; one from another factor still does", async () => {
    const u = unitStepgate();
    const now = seconds(u.now());
    await u.stores.sessions.recordElevation(
      "alice",
      "s1",
      { ...aal2, authTime: now, factorId: "f1" },
      600_000,
    );
    await u.stores.sessions.recordElevation(
      "alice",
      "s2",
      { ...aal2, authTime: now, factorId: "f2" },
      600_000,
    );
    const before = await u.stepUp({ ...base, action: "payments.transfer" });
    assert.equal(before.kind === "grant" && before.grant.claims.fid, "f1", "the grant names its factor");
    await u.stores.sessions.endFactor("f1", u.now(), 900_000);
    assert.equal((await u.stepUp({ ...base, action: "payments.transfer" })).kind, "challenge");
    assert.equal((await u.stepUp({ ...base, sessionId: "s2", action: "payments.transfer" })).kind, "grant");
  });

  it("an elevation recorded as the session ended (same second or later) never counts", async () => {
    const u = unitStepgate();
    await u.stores.sessions.end("alice", "s1", u.now(), 60_000, ["aal1", "aal2", "aal3"]);
    await u.stores.sessions.recordElevation("alice", "s1", { ...aal2, authTime: seconds(u.now()) }, 600_000);
    const standing = await u.stores.sessions.standing("alice", "s1", ["aal2"]);
    assert.deepEqual(standing.elevations, []);
    u.advance(1_000);
    await u.stores.sessions.recordElevation("alice", "s1", { ...aal2, authTime: seconds(u.now()) }, 600_000);
    await assert.rejects(u.stepUp({ ...base, action: "payments.transfer" }), { reason: "SESSION_ENDED" });
  });
});
