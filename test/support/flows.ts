import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { StepgateClient } from "@stepgate/client";
import type { Harness } from "./stepgate.ts";

export const newSubject = () => `user-${randomBytes(6).toString("hex")}`;
export const newSession = () => `session-${randomBytes(6).toString("hex")}`;
export const newKey = () => `key-${randomBytes(8).toString("hex")}`;

/** Enrols and confirms a TOTP factor; returns its id and secret. */
export async function enrolTotp(h: Harness, subject: string, client: StepgateClient = h.client, grant = "") {
  const enrolled = await client.factors.enrollTotp({
    subject,
    label: "Phone",
    accountName: `${subject}@example.com`,
    grant,
  });
  await client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: h.code(enrolled.secret) });
  // The confirming code's step is used up: later codes come from the next step on.
  h.clock.advance(30_000);
  return { factorId: enrolled.factorId, secret: enrolled.secret };
}

/** Asks to step up and expects a challenge; returns its id. */
export async function challenge(client: StepgateClient, subject: string, sessionId: string, action: string) {
  const res = await client.stepUp.stepUp({ subject, sessionId, action });
  assert.equal(res.outcome.case, "challenge", `expected a challenge, got ${res.outcome.case}`);
  return res.outcome.value;
}

/** StepUp then Verify with a TOTP code; returns the Verify response. */
export async function stepUpWithTotp(
  h: Harness,
  subject: string,
  sessionId: string,
  action: string,
  secret: string,
) {
  const c = await challenge(h.client, subject, sessionId, action);
  return h.client.stepUp.verify({
    challengeId: c.challengeId,
    subject,
    sessionId,
    action,
    proof: { kind: { case: "totpCode", value: h.code(secret) } },
    idempotencyKey: newKey(),
  });
}

/** StepUp that must be answered with a grant (the session is already elevated); returns the token. */
export async function grantFor(client: StepgateClient, subject: string, sessionId: string, action: string) {
  const res = await client.stepUp.stepUp({ subject, sessionId, action });
  assert.equal(res.outcome.case, "grant", `expected a grant, got ${res.outcome.case}`);
  return res.outcome.value.token;
}
