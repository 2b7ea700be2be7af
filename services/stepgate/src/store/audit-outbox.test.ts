import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeAuditEvent, encodeAuditEvent } from "./audit-outbox.ts";
import type { AuditEvent } from "./audit-store.ts";

describe("audit outbox entries", () => {
  it("carry an event through JSON unchanged, the time to the ms", () => {
    const full: AuditEvent = {
      id: "0123456789abcdefABCDEF",
      type: "verify.succeeded",
      subject: "user-1",
      caller: "payments",
      replica: "replica-1",
      details: { method: "totp", amr: ["otp"], exp: 1_800_000_120 },
      at: new Date(1_800_000_000_123),
    };
    assert.deepEqual(decodeAuditEvent(encodeAuditEvent(full)), full);
    const bare: AuditEvent = { id: "x", type: "session.ended", replica: "r", at: new Date(5) };
    assert.deepEqual(decodeAuditEvent(encodeAuditEvent(bare)), bare);
  });

  it("read nothing else as an event", () => {
    const good = JSON.parse(
      encodeAuditEvent({ id: "x", type: "t", replica: "r", at: new Date(1), details: {} }),
    ) as Record<string, unknown>;
    for (const bad of [
      "",
      "not json",
      "null",
      "[]",
      "42",
      JSON.stringify({ ...good, id: "" }),
      JSON.stringify({ ...good, id: 7 }),
      JSON.stringify({ ...good, at: "yesterday" }),
      JSON.stringify({ ...good, type: undefined }),
      JSON.stringify({ ...good, replica: null }),
      JSON.stringify({ ...good, subject: 1 }),
      JSON.stringify({ ...good, caller: {} }),
      JSON.stringify({ ...good, details: [] }),
      JSON.stringify({ ...good, details: "x" }),
    ]) {
      assert.equal(decodeAuditEvent(bad), undefined, bad);
    }
  });
});
