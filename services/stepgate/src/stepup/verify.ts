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

/** Marks a challenge answered, holding the claim of the call that answered it. */
const answeredKey = (challengeId: string) => `answered:${challengeId}`;

/** Answers a challenge. The same idempotency key always gets the same result. */
export async function verify(sg: Stepgate, input: VerifyInput): Promise<VerifyOutcome> {
  const id = input.challengeId;
  const claim = sg.fingerprint("claim", id, input.idempotencyKey);
  const key = `verify:${id}:${claim}`;
  // One round trip for the challenge, this key's recorded result and who answered the challenge.
  const [stored, recorded, answeredBy] = await sg.hot.getMany([
    sg.challenges.keyOf(id),
    key,
    answeredKey(id),
  ]);
  const challenge = sg.challenges.parse(stored ?? null);
  assertThat(challenge, "CHALLENGE_NOT_FOUND", "no such challenge");
  assertThat(
    challenge.subject === input.subject &&
      challenge.sessionId === input.sessionId &&
      challenge.action === input.action &&
      challenge.caller === input.caller,
    "CHALLENGE_MISMATCH",
    "challenge was issued for another subject, session, action or caller",
  );
  return runOnce(sg.hot, {
    key,
    recorded: recorded ?? null,
    seal: (outcome) => sg.keyRing.seal(Buffer.from(JSON.stringify(outcome)), key).toString("base64"),
    open: (sealed) =>
      JSON.parse(sg.keyRing.open(Buffer.from(sealed, "base64"), key).toString("utf8")) as VerifyOutcome,
    fingerprint: sg.fingerprint("proof", input.method, input.code),
    ttlMs: sg.challenges.retentionMs(challenge, sg.clock()),
    run: () => answer(sg, challenge, input, claim, answeredBy ?? null),
  });
}

async function answer(
  sg: Stepgate,
  challenge: Challenge,
  input: VerifyInput,
  claim: string,
  answeredBy: string | null,
): Promise<VerifyOutcome> {
  const now = sg.clock();
  assertThat(now < challenge.expiresAt, "CHALLENGE_EXPIRED", "challenge expired");
  assertThat(answeredBy === null || answeredBy === claim, "CHALLENGE_USED", "challenge was already answered");
  assertThat(
    challenge.methods.includes(input.method),
    "METHOD_NOT_ALLOWED",
    "method not allowed for this challenge",
  );
  const retentionMs = sg.challenges.retentionMs(challenge, now);
  const attemptsLeft = await sg.attempts.spend(challenge.id, challenge.subject, retentionMs);
  const checked = await inSpan(
    "stepgate.factor.verify",
    {
      "stepgate.method": input.method,
      "stepgate.action": challenge.action,
      "stepgate.replica": sg.config.replicaId,
    },
    async (span) => {
      const result = await checkProof(
        sg,
        input.method,
        challenge.subject,
        input.code,
        claim,
        now,
        challenge.totp,
      );
      span.setAttribute("stepgate.outcome", result.result);
      return result;
    },
  );
  if (checked.result !== "ok") {
    sg.audit.record({
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
  const method = sg.policy.methods[input.method];
  assertThat(method, "METHOD_NOT_ALLOWED", "method not allowed for this challenge");
  const elevation = { acr: method.acr, amr: method.amr, method: input.method, authTime: toSeconds(now) };
  // The proof was right and is claimed: reset the failures, mark the challenge answered and
  // record the session's elevation in one pipelined round trip.
  const [, first] = await Promise.all([
    sg.attempts.succeeded(challenge.subject),
    sg.hot.setIfAbsent(answeredKey(challenge.id), claim, retentionMs),
    sg.elevations.record(challenge.subject, challenge.sessionId, elevation),
  ]);
  // Two right answers racing under different idempotency keys: only one gets a grant.
  assertThat(
    first || (await sg.hot.get(answeredKey(challenge.id))) === claim,
    "CHALLENGE_USED",
    "challenge was already answered",
  );
  const action = sg.policy.actions.get(challenge.action);
  assertThat(action, "UNKNOWN_ACTION", "no policy for this action");
  const grant = issue(sg, {
    subject: challenge.subject,
    sessionId: challenge.sessionId,
    caller: challenge.caller,
    action,
    elevation,
  });
  sg.audit.record({
    type: "verify.succeeded",
    subject: challenge.subject,
    caller: challenge.caller,
    details: { method: input.method, ...grantAudit(grant) },
  });
  return { grant, method: input.method, recoveryCodesRemaining: checked.remaining };
}
