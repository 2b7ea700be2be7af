import { randomBytes } from "node:crypto";
import type { StepgateClient } from "@stepgate/client";
import { totpCode, totpStep } from "./totp-code.ts";

/** A subject with one confirmed TOTP factor, as `seedSubjects` enrolled it. */
export interface FlowSubject {
  subject: string;
  factorId: string;
  /** The factor's base32 secret (the authenticator app's). */
  secret: string;
  /** The newest RFC 6238 time step known to be used for this factor (the server accepts a code only
   * for a newer step): the confirming code's at first. Flow generators move it on. */
  lastStep: number;
}

/** Options of `seedSubjects`. */
export interface SeedSubjectsOptions {
  /** Enrolments in flight at once. Default 16. */
  concurrency?: number;
  /** The start of each subject's name; 12 random hex digits follow. Default `load-`. */
  prefix?: string;
}

/**
 * Enrols `count` new subjects through the API, each with a confirmed TOTP factor: EnrollTotp, then
 * ConfirmTotp with the current code (which uses up the current 30 s step; the next code is good at
 * once, with one step of skew). `concurrency` at a time. Rejects with the first call's ConnectError
 * (deadlines are the client's).
 */
export async function seedSubjects(
  client: StepgateClient,
  count: number,
  options: SeedSubjectsOptions = {},
): Promise<FlowSubject[]> {
  const { concurrency = 16, prefix = "load-" } = options;
  const subjects: FlowSubject[] = [];
  const seedOne = async () => {
    const subject = `${prefix}${randomBytes(6).toString("hex")}`;
    const enrolled = await client.factors.enrollTotp({
      subject,
      label: "Phone",
      accountName: `${subject}@example.com`,
      grant: "",
    });
    const now = Math.floor(Date.now() / 1000);
    await client.factors.confirmTotp({
      subject,
      factorId: enrolled.factorId,
      code: totpCode(enrolled.secret, now),
    });
    subjects.push({ subject, factorId: enrolled.factorId, secret: enrolled.secret, lastStep: totpStep(now) });
  };
  for (let i = 0; i < count; i += concurrency) {
    await Promise.all(Array.from({ length: Math.min(concurrency, count - i) }, seedOne));
  }
  return subjects;
}

/** A grant as `grantsForSessions` obtained it: whose, for which session, and the token. */
export interface SessionGrant {
  subject: string;
  sessionId: string;
  token: string;
}

/**
 * One grant for `action` per subject, each for a session of its own (`${sessionPrefix}${i}`):
 * StepUp, then Verify with the code one step after the confirming one (one step of skew is
 * accepted), one subject after another. Rejects when StepUp answers anything but a challenge, or
 * with the first call's ConnectError.
 */
export async function grantsForSessions(
  client: StepgateClient,
  subjects: FlowSubject[],
  action: string,
  sessionPrefix: string,
): Promise<SessionGrant[]> {
  const grants: SessionGrant[] = [];
  for (const [i, s] of subjects.entries()) {
    const sessionId = `${sessionPrefix}${i}`;
    const up = await client.stepUp.stepUp({ subject: s.subject, sessionId, action });
    if (up.outcome.case !== "challenge") throw new Error(`expected a challenge, got ${up.outcome.case}`);
    const verified = await client.stepUp.verify({
      challengeId: up.outcome.value.challengeId,
      subject: s.subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: totpCode(s.secret, Math.floor(Date.now() / 1000) + 30) } },
      idempotencyKey: `${sessionPrefix}key-${i}-${randomBytes(6).toString("hex")}`,
    });
    grants.push({ subject: s.subject, sessionId, token: verified.grant?.token ?? "" });
  }
  return grants;
}
