import type { AuditLog } from "../audit/audit-log.ts";
import type { Fingerprint } from "../crypto/fingerprint.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { type Challenge, challengeRetentionMs } from "../domain/challenge.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { Elevation } from "../domain/elevation.ts";
import type { MethodName } from "../domain/method.ts";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";
import { type AssertedPasskey, type AssertPasskey, passkeyAssurance } from "../factors/assert-passkey.ts";
import type { Checked, CheckProof } from "../factors/check-proof.ts";
import type { FlagCloned } from "../factors/flag-cloned.ts";
import { inputRefusals, passkeyError } from "../factors/passkey.ts";
import { type GrantIssuer, grantAudit, type IssuedGrant } from "../grants/grant-issuer.ts";
import type { Attempts, SpentAttempt } from "../limits/attempts.ts";
import type { Metrics } from "../observability/metrics.ts";
import { inSpan } from "../observability/tracing.ts";
import { elevationLifetimeMs } from "../policy/assurance.ts";
import type { Policy } from "../policy/policy.ts";
import { requirementOf } from "../policy/requirement.ts";
import type { ChallengeStore } from "../store/challenge-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { SubjectFactStore } from "../store/subject-facts.ts";
import type { VerifyResults } from "../store/verify-results.ts";
import { runOnce } from "./idempotency.ts";
import { assertSameTransaction } from "./transaction-binding.ts";

export interface VerifyInput {
  challengeId: string;
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
  method: MethodName;
  /** The TOTP or recovery code, or the passkey's assertion as JSON text. */
  code: string;
  /** The caller's key for this answer: a retry with the same key gets the same result. */
  idempotencyKey: string;
  /** The transaction the challenge was issued for, where its action binds grants. */
  transaction?: unknown;
}

export interface VerifyOutcome {
  grant: IssuedGrant;
  method: MethodName;
  /** Unused recovery codes left (0 for TOTP). */
  recoveryCodesRemaining: number;
}

/**
 * Answers a challenge; success records the session's elevation and returns a grant. The same
 * idempotency key always gets the same result. Fails with CHALLENGE_NOT_FOUND, CHALLENGE_MISMATCH,
 * CHALLENGE_EXPIRED, SESSION_ENDED, CHALLENGE_USED, METHOD_NOT_ALLOWED, CHALLENGE_LOCKED,
 * SUBJECT_LOCKED (with retry time), WRONG_CODE, CODE_REPLAYED, FACTOR_REMOVED,
 * IDEMPOTENCY_KEY_REUSED or UNKNOWN_ACTION; for a challenge bound to a transaction,
 * TRANSACTION_REQUIRED, TRANSACTION_INVALID or TRANSACTION_MISMATCH (nothing written); a passkey's answer with PASSKEY_MALFORMED or
 * PASSKEY_REFUSED. A passkey answer refused for what it is (another challenge, origin or RP id, a
 * requirement unmet, an unknown credential) is refused before an attempt is spent and writes
 * nothing; a bad signature or a counter that did not grow counts as a wrong answer, and the
 * latter flags the credential as cloned and is audited.
 */
export type Verify = (input: VerifyInput) => Promise<VerifyOutcome>;

export interface VerifyDeps {
  policy: Policy;
  clock: Clock;
  challenges: ChallengeStore;
  verifyResults: VerifyResults;
  attempts: Attempts;
  checkProof: CheckProof;
  /** Checks a passkey's assertion against the challenge (factors/assert-passkey.ts); writes nothing. */
  assertPasskey: AssertPasskey;
  /** Flags a passkey whose counter did not grow (factors/flag-cloned.ts). */
  flagCloned: FlagCloned;
  sessions: Pick<SessionStore, "elevationWrite">;
  issueGrant: GrantIssuer;
  audit: Pick<AuditLog, "record">;
  /** Keys the idempotency claim and the proof's fingerprint. */
  fingerprint: Fingerprint;
  /** Seals recorded results, which hold grants. */
  keyRing: KeyRing;
  /** Names the replica on the `stepgate.factor.verify` span. */
  replicaId: string;
  /** Counts lockouts by the calling service that caused them. */
  metrics: Pick<Metrics, "lockoutStarted">;
  /** Records the facts of an approved step-up (payee, device, network, when), for the policy's rules. */
  facts: Pick<SubjectFactStore, "record">;
}

/** The binding of a recorded Verify result to its challenge and claim (AES-GCM associated data). */
export function verifyResultBinding(challengeId: string, claim: string): string {
  return `verify:${challengeId}:${claim}`;
}

export function createVerify(deps: VerifyDeps): Verify {
  const elevationTtlMs = elevationLifetimeMs(deps.policy);
  return async (input) => {
    const id = input.challengeId;
    const claim = deps.fingerprint("claim", id, input.idempotencyKey);
    // One read: the challenge, this key's result, who answered it, and whether the session ended.
    const { challenge, recorded, answeredBy, sessionEndedAt } = await deps.challenges.read(id, claim, input);
    assertThat(challenge, "CHALLENGE_NOT_FOUND", "no such challenge");
    assertThat(
      challenge.subject === input.subject &&
        challenge.sessionId === input.sessionId &&
        challenge.action === input.action &&
        challenge.caller === input.caller,
      "CHALLENGE_MISMATCH",
      "challenge was issued for another subject, session, action or caller",
    );
    // Another transaction than the challenge's is refused before anything is checked, counted or recorded.
    if (challenge.transaction) assertSameTransaction(challenge.transaction.digest, input.transaction);
    const retentionMs = challengeRetentionMs(challenge, deps.clock());
    // The sealed result is bound to its challenge and claim: it cannot be replayed for another.
    const binding = verifyResultBinding(id, claim);
    return runOnce({
      slot: {
        read: () => deps.verifyResults.get(id, claim),
        record: (entry) => deps.verifyResults.record(id, claim, entry, retentionMs),
      },
      recorded,
      seal: (outcome) => deps.keyRing.seal(Buffer.from(JSON.stringify(outcome)), binding).toString("base64"),
      open: (sealed) =>
        JSON.parse(
          deps.keyRing.open(Buffer.from(sealed, "base64"), binding).toString("utf8"),
        ) as VerifyOutcome,
      fingerprint: deps.fingerprint("proof", input.method, input.code),
      run: () => answer(deps, elevationTtlMs, challenge, input, { claim, answeredBy, sessionEndedAt }),
    });
  };
}

/** What was read about the challenge before answering it. */
interface AnswerState {
  /** This call's claim: the challenge and the idempotency key. */
  claim: string;
  /** The claim that answered the challenge already, or null. */
  answeredBy: string | null;
  /** When the challenge's session was ended (epoch ms), if it was. */
  sessionEndedAt: number | undefined;
}

async function answer(
  deps: VerifyDeps,
  elevationTtlMs: number,
  challenge: Challenge,
  input: VerifyInput,
  { claim, answeredBy, sessionEndedAt }: AnswerState,
): Promise<VerifyOutcome> {
  const now = deps.clock();
  assertThat(now < challenge.expiresAt, "CHALLENGE_EXPIRED", "challenge expired");
  // An ended session is ended for good: its open challenges end with it.
  assertThat(sessionEndedAt === undefined, "SESSION_ENDED", "challenge's session was ended");
  assertThat(answeredBy === null || answeredBy === claim, "CHALLENGE_USED", "challenge was already answered");
  assertThat(
    challenge.methods.includes(input.method),
    "METHOD_NOT_ALLOWED",
    "method not allowed for this challenge",
  );
  const passkey = input.method === "passkey" ? await deps.assertPasskey(challenge, input.code) : undefined;
  // Refused for what it is, not for a guess: no attempt is spent, nothing is written.
  if (passkey && !passkey.ok && inputRefusals.has(passkey.refusal)) throw passkeyError(passkey.refusal);
  const retentionMs = challengeRetentionMs(challenge, now);
  const attempt = await deps.attempts.spend(challenge.id, challenge.subject, retentionMs);
  if (passkey && !passkey.ok) {
    const factorId = passkey.record?.factorId;
    const refused: Checked =
      passkey.refusal === "counter_regressed" && factorId
        ? { result: "cloned", factorId }
        : { result: "wrong" };
    return refuse(deps, challenge, input.method, refused, attempt);
  }
  const checked = await checkInSpan(deps, challenge, input, { claim, now, passkey }).catch(
    async (error: unknown) => {
      // Nothing was checked: the attempt goes back (if the store that counts it still answers).
      if (error instanceof DependencyUnavailableError) {
        await deps.attempts.refund(challenge.id, challenge.subject).catch(() => {});
      }
      throw error;
    },
  );
  if (checked.result !== "ok") return refuse(deps, challenge, input.method, checked, attempt);
  const method = deps.policy.methods[input.method];
  assertThat(method, "METHOD_NOT_ALLOWED", "method not allowed for this challenge");
  // The requirement the challenge was issued under: its rule's, where a rule set it.
  const action = requirementOf(deps.policy, challenge);
  assertThat(action, "UNKNOWN_ACTION", "no policy for this action or its rule");
  const assurance = passkey?.ok ? passkeyAssurance(deps.policy, passkey.asserted) : method;
  const elevation: Elevation = {
    acr: assurance.acr,
    amr: assurance.amr,
    method: input.method,
    authTime: toSeconds(now),
    factorId: checked.factorId,
  };
  // The proof was right and is claimed: mark the challenge answered and, only for the claim that
  // answered it, record the session's elevation and reset the failures, in one atomic step.
  const answeredNow = await deps.challenges.markAnswered(challenge.id, claim, retentionMs, [
    deps.sessions.elevationWrite(challenge.subject, challenge.sessionId, elevation, elevationTtlMs),
    deps.attempts.succeededWrite(challenge.subject),
  ]);
  // Two right answers racing under different idempotency keys: only one gets a grant.
  assertThat(answeredNow === claim, "CHALLENGE_USED", "challenge was already answered");
  const grant = deps.issueGrant({
    subject: challenge.subject,
    sessionId: challenge.sessionId,
    caller: challenge.caller,
    action,
    elevation,
    ...(challenge.transaction ? { transaction: challenge.transaction.digest } : {}),
  });
  await deps.audit.record({
    type: "verify.succeeded",
    subject: challenge.subject,
    caller: challenge.caller,
    details: {
      method: input.method,
      ...grantAudit(grant),
      ...(challenge.rule ? { rule: challenge.rule } : {}),
    },
  });
  await recordFacts(deps, challenge.facts, now);
  return { grant, method: input.method, recoveryCodesRemaining: checked.remaining };
}

// Best effort: a fact not recorded (PostgreSQL down) only makes a later condition see "not seen", the stricter side.
async function recordFacts(
  deps: Pick<VerifyDeps, "facts">,
  facts: string[] | undefined,
  now: number,
): Promise<void> {
  if (!facts || facts.length === 0) return;
  await deps.facts.record(facts, now).catch(() => {});
}

/**
 * Records a wrong, replayed, removed or cloned factor's answer as a failure and throws its reason.
 * A cloned passkey is flagged (best effort: while PostgreSQL is down the hot store's counter goes on
 * refusing the clone) and audited.
 */
async function refuse(
  deps: VerifyDeps,
  challenge: Challenge,
  method: MethodName,
  checked: Exclude<Checked, { result: "ok" }>,
  attempt: SpentAttempt,
): Promise<never> {
  const { subject, caller } = challenge;
  const result = checked.result;
  const lockoutStarted = await deps.attempts.failed(subject, attempt);
  if (checked.result === "cloned") {
    await deps.flagCloned(subject, checked.factorId, new Date(deps.clock()));
    const details = { factor_id: checked.factorId, action: challenge.action };
    await deps.audit.record({ type: "passkey.counter_regressed", subject, caller, details });
  }
  await deps.audit.record({
    type: "verify.failed",
    subject,
    caller,
    details: { action: challenge.action, method, reason: result },
  });
  if (lockoutStarted) {
    deps.metrics.lockoutStarted(caller);
    const details = { failures: attempt.failures, duration_s: deps.policy.lockoutDuration };
    await deps.audit.record({ type: "lockout.started", subject, caller, details });
  }
  const attemptsRemaining = { attempts_remaining: String(attempt.attemptsLeft) };
  if (result === "cloned") throw passkeyError("counter_regressed", attemptsRemaining);
  if (method === "passkey" && result === "wrong") throw passkeyError("bad_signature", attemptsRemaining);
  if (result === "replayed") throw new StepgateError("CODE_REPLAYED", "code was already used");
  if (result === "removed")
    throw new StepgateError("FACTOR_REMOVED", "code is for a factor that was removed");
  throw new StepgateError("WRONG_CODE", "wrong code", { metadata: attemptsRemaining });
}

/** Checks the proof inside a `stepgate.factor.verify` span. */
function checkInSpan(
  deps: VerifyDeps,
  challenge: Challenge,
  input: VerifyInput,
  { claim, now, passkey }: { claim: string; now: number; passkey: AssertedPasskey | undefined },
): Promise<Checked> {
  const attributes = {
    "stepgate.method": input.method,
    "stepgate.action": challenge.action,
    "stepgate.replica": deps.replicaId,
  };
  return inSpan("stepgate.factor.verify", attributes, async (span) => {
    const checked = await deps.checkProof({
      method: input.method,
      subject: challenge.subject,
      code: input.code,
      claim,
      now,
      totp: challenge.totp,
      passkey: passkey?.ok
        ? { factorId: passkey.record.factorId, counter: passkey.asserted.counter }
        : undefined,
    });
    span.setAttribute("stepgate.outcome", checked.result);
    return checked;
  });
}
