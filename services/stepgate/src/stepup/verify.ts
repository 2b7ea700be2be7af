import type { MethodName } from "../config/policy.ts";
import { toSeconds } from "../domain/clock.ts";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";
import { checkProof } from "../factors/check-proof.ts";
import type { IssuedGrant } from "../grants/grant-issuer.ts";
import { issue } from "../grants/issue.ts";
import { inSpan } from "../observability/tracing.ts";
import type { Stepgate } from "../stepgate.ts";
import type { Challenge } from "./challenges.ts";
import { runOnce } from "./idempotency.ts";
import { grantAudit } from "./step-up.ts";

export interface VerifyInput {
  challengeId: string;
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
  method: MethodName;
  code: string;
  idempotencyKey: string;
}

export interface VerifyOutcome {
  grant: IssuedGrant;
  method: MethodName;
  recoveryCodesRemaining: number;
}

/** Answers a challenge. The same idempotency key always gets the same result. */
export async function verify(sg: Stepgate, input: VerifyInput): Promise<VerifyOutcome> {
  const challenge = await sg.challenges.find(input.challengeId);
  assertThat(challenge, "CHALLENGE_NOT_FOUND", "no such challenge");
  assertThat(
    challenge.subject === input.subject &&
      challenge.sessionId === input.sessionId &&
      challenge.action === input.action &&
      challenge.caller === input.caller,
    "CHALLENGE_MISMATCH",
    "challenge was issued for another subject, session, action or caller",
  );
  const claim = sg.fingerprint("claim", challenge.id, input.idempotencyKey);
  const key = `verify:${challenge.id}:${claim}`;
  return runOnce(sg.hot, {
    key,
    seal: (outcome) => sg.keyRing.seal(Buffer.from(JSON.stringify(outcome)), key).toString("base64"),
    open: (sealed) =>
      JSON.parse(sg.keyRing.open(Buffer.from(sealed, "base64"), key).toString("utf8")) as VerifyOutcome,
    fingerprint: sg.fingerprint("proof", input.method, input.code),
    ttlMs: sg.challenges.retentionMs(challenge, sg.clock()),
    run: () => answer(sg, challenge, input, claim),
  });
}

async function answer(
  sg: Stepgate,
  challenge: Challenge,
  input: VerifyInput,
  claim: string,
): Promise<VerifyOutcome> {
  const now = sg.clock();
  assertThat(now < challenge.expiresAt, "CHALLENGE_EXPIRED", "challenge expired");
  const answeredKey = `answered:${challenge.id}`;
  const answeredBy = await sg.hot.get(answeredKey);
  assertThat(answeredBy === null || answeredBy === claim, "CHALLENGE_USED", "challenge was already answered");
  assertThat(
    challenge.methods.includes(input.method),
    "METHOD_NOT_ALLOWED",
    "method not allowed for this challenge",
  );
  const retentionMs = sg.challenges.retentionMs(challenge, now);
  const attemptsLeft = await sg.attempts.spendOnChallenge(challenge.id, retentionMs);
  await sg.attempts.spendOnSubject(challenge.subject);
  const checked = await inSpan(
    "stepgate.factor.verify",
    {
      "stepgate.method": input.method,
      "stepgate.action": challenge.action,
      "stepgate.replica": sg.config.replicaId,
    },
    async (span) => {
      const result = await checkProof(sg, input.method, challenge.subject, input.code, claim, now);
      span.setAttribute("stepgate.outcome", result.result);
      return result;
    },
  );
  if (checked.result !== "ok") {
    await sg.audit({
      type: "verify.failed",
      subject: challenge.subject,
      caller: challenge.caller,
      details: { action: challenge.action, method: input.method, reason: checked.result },
    });
    if (checked.result === "replayed") throw new StepgateError("CODE_REPLAYED", "code was already used");
    throw new StepgateError("WRONG_CODE", "wrong code", {
      metadata: { attempts_remaining: String(attemptsLeft) },
    });
  }
  await sg.attempts.succeeded(challenge.subject);
  // Two right answers racing under different idempotency keys: only one gets a grant.
  const first = await sg.hot.setIfAbsent(answeredKey, claim, retentionMs);
  assertThat(
    first || (await sg.hot.get(answeredKey)) === claim,
    "CHALLENGE_USED",
    "challenge was already answered",
  );
  const method = sg.policy.methods[input.method];
  assertThat(method, "METHOD_NOT_ALLOWED", "method not allowed for this challenge");
  const elevation = { acr: method.acr, amr: method.amr, method: input.method, authTime: toSeconds(now) };
  await sg.elevations.record(challenge.subject, challenge.sessionId, elevation);
  const action = sg.policy.actions.get(challenge.action);
  assertThat(action, "UNKNOWN_ACTION", "no policy for this action");
  const grant = issue(sg, {
    subject: challenge.subject,
    sessionId: challenge.sessionId,
    caller: challenge.caller,
    action,
    elevation,
  });
  await sg.audit({
    type: "verify.succeeded",
    subject: challenge.subject,
    caller: challenge.caller,
    details: { method: input.method, ...grantAudit(grant) },
  });
  return { grant, method: input.method, recoveryCodesRemaining: checked.remaining };
}
