// Security state that must stay closed whatever happens to the stores: a spent single-use grant, an
// ended session's grant, a locked subject (test policy of support/stepgate.ts).
import assert from "node:assert/strict";
import { Code } from "@connectrpc/connect";
import type { StepgateClient } from "@stepgate/client";
import { expectFailure } from "./errors.ts";
import { challenge, newKey, newSession } from "./flows.ts";

/** Security state closed on purpose, for `assertClosed` to check later. */
export interface ClosedState {
  /** A `secrets.read` grant (max_age 0: single use) that one CheckGrant spent. */
  singleToken: string;
  /** A `payments.transfer` grant of a session ended since. */
  endedToken: string;
  /** A subject locked out by wrong codes. */
  locked: string;
}

/** Subjects with a confirmed TOTP factor and how to make a valid, unused code for each. */
export interface ClosingSubjects {
  /** Spends a single-use grant. */
  spender: string;
  /** Ends a session after its step-up. */
  ender: string;
  /** Gets locked out. */
  locked: string;
  /** A valid TOTP code for `subject` that was never used (the server's clock). */
  code(subject: string): string;
}

/** Wrong codes until the subject is locked (test policy: 5 attempts a challenge, locked past 8 failures). */
export async function lockOut(client: StepgateClient, subject: string) {
  const outcomes: string[] = [];
  for (const attempts of [5, 4]) {
    const sessionId = newSession();
    const c = await challenge(client, subject, sessionId, "payments.transfer");
    for (let i = 0; i < attempts; i++) {
      outcomes.push(
        await client.stepUp.verify(wrongCode(c.challengeId, subject, sessionId)).then(
          () => "OK",
          (e: unknown) => String((e as { code?: unknown }).code),
        ),
      );
    }
  }
  assert.equal(outcomes.at(-1), String(Code.ResourceExhausted), "the subject is locked");
}

/** Closes state with `subjects`: a spent single-use grant, an ended session's grant, a locked subject.
 * Rejects (assertion or ConnectError) if a step does not answer as the policy says. */
export async function closeState(client: StepgateClient, subjects: ClosingSubjects): Promise<ClosedState> {
  const verified = async (subject: string, sessionId: string, action: string) => {
    const c = await challenge(client, subject, sessionId, action);
    const res = await client.stepUp.verify({
      challengeId: c.challengeId,
      subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: subjects.code(subject) } },
      idempotencyKey: newKey(),
    });
    return res.grant?.token ?? "";
  };
  const singleToken = await verified(subjects.spender, newSession(), "secrets.read");
  await client.stepUp.checkGrant({ token: singleToken, action: "secrets.read" });
  const ended = newSession();
  const endedToken = await verified(subjects.ender, ended, "payments.transfer");
  await client.stepUp.endSession({ subject: subjects.ender, sessionId: ended });
  await lockOut(client, subjects.locked);
  return { singleToken, endedToken, locked: subjects.locked };
}

/** What `closeState` closed stays closed: the grant spent, the session's grant revoked, the subject locked. */
export async function assertClosed(client: StepgateClient, state: ClosedState, when: string) {
  await expectFailure(
    client.stepUp.checkGrant({ token: state.singleToken, action: "secrets.read" }),
    Code.PermissionDenied,
    "GRANT_CONSUMED",
  );
  await expectFailure(
    client.stepUp.checkGrant({ token: state.endedToken, action: "payments.transfer" }),
    Code.PermissionDenied,
    "GRANT_REVOKED",
  );
  const sessionId = newSession();
  const c = await challenge(client, state.locked, sessionId, "payments.transfer");
  const refused = await expectFailure(
    client.stepUp.verify(wrongCode(c.challengeId, state.locked, sessionId)),
    Code.ResourceExhausted,
    "SUBJECT_LOCKED",
  );
  assert.ok(refused, when);
}

/** A Verify request with a wrong code. */
function wrongCode(challengeId: string, subject: string, sessionId: string) {
  return {
    challengeId,
    subject,
    sessionId,
    action: "payments.transfer",
    proof: { kind: { case: "totpCode" as const, value: "000000" } },
    idempotencyKey: newKey(),
  };
}
