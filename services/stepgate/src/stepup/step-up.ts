import type { AuditLog } from "../audit/audit-log.ts";
import type { Fingerprint } from "../crypto/fingerprint.ts";
import { randomToken } from "../crypto/random-id.ts";
import { type Challenge, challengeRetentionMs } from "../domain/challenge.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import type { Elevation } from "../domain/elevation.ts";
import type { Enrolled } from "../domain/factor.ts";
import type { MethodName } from "../domain/method.ts";
import type { PasskeyRecord, RelyingParty } from "../domain/passkey.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import { bindingOf } from "../factors/assert-passkey.ts";
import { requestOptionsJson, usablePasskeys } from "../factors/passkey-options.ts";
import { type GrantIssuer, grantAudit, type IssuedGrant } from "../grants/grant-issuer.ts";
import { inSpan } from "../observability/tracing.ts";
import { levelsAtLeast, methodsFor } from "../policy/assurance.ts";
import { type ActionPolicy, type Policy, relyingPartyFor } from "../policy/policy.ts";
import { chooseRequirement, noFacts, type RequirementChoice } from "../policy/requirement.ts";
import type { ChallengeStore } from "../store/challenge-store.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { SubjectFactStore } from "../store/subject-facts.ts";
import { allFactKeys, factKeysOf, readFacts } from "./subject-facts.ts";
import { boundTransaction, conditionTransaction } from "./transaction-binding.ts";

export interface StepUpInput {
  subject: string;
  sessionId: string;
  action: string;
  /** The calling service: the grant's audience and the only one that may answer a challenge. */
  caller: string;
  /** Caller-supplied facts recorded in the audit trail. */
  context: Record<string, string>;
  /** The transaction to approve ({ amount, currency, payee, resource? }); needed where the action binds grants. */
  transaction?: unknown;
}

export type StepUpOutcome = DecidedOutcome & {
  /** The policy rule that set the requirement (its name); undefined for the action's own fields. */
  rule?: string;
};

type DecidedOutcome =
  | { kind: "grant"; grant: IssuedGrant }
  | {
      kind: "challenge";
      challenge: Challenge;
      attemptsRemaining: number;
      /** RFC 9470 max_age in seconds for this answer: the action's, or 0 for a bound transaction. */
      maxAge: number;
      /** When the challenge offers a passkey: the WebAuthn request options, as JSON text. */
      passkeyOptionsJson?: string;
    }
  /** `maxAge`: the action's RFC 9470 max_age in seconds (0 for an action that binds its grants). */
  | { kind: "enrollment_required"; acr: string; maxAge: number; methods: MethodName[] };

/**
 * Decides whether the session may act now (a grant from a fresh elevation, RFC 9470 acr and
 * max_age), must answer a challenge, or must enrol first. An action that binds its grants never
 * reuses an elevation: each transaction is proved, and its challenge is bound to the transaction.
 * Fails with UNKNOWN_ACTION, TRANSACTION_REQUIRED, TRANSACTION_INVALID, or
 * SESSION_ENDED for a session EndSession ended (it is ended for good: a grant issued to it would
 * fail CheckGrant, so none is issued).
 */
export type StepUp = (input: StepUpInput) => Promise<StepUpOutcome>;

export interface StepUpDeps {
  policy: Policy;
  clock: Clock;
  sessions: Pick<SessionStore, "standing">;
  factors: Pick<FactorStore, "enrolled">;
  challenges: Pick<ChallengeStore, "save">;
  issueGrant: GrantIssuer;
  audit: Pick<AuditLog, "record">;
  /** Names the replica on the `stepgate.policy.evaluate` span. */
  replicaId: string;
  /** The fleet's passkey challenge key (32 bytes): derives each challenge's WebAuthn challenge. */
  challengeKey: Uint8Array;
  /** "Seen before" facts, read when a rule's condition needs them. */
  facts: Pick<SubjectFactStore, "seen">;
  /** Keys the facts (stepup/subject-facts.ts). */
  fingerprint: Fingerprint;
}

export function createStepUp(deps: StepUpDeps): StepUp {
  return async (input) => {
    const action = deps.policy.actions.get(input.action);
    assertThat(action, "UNKNOWN_ACTION", "no policy for this action");
    const attributes = {
      "stepgate.action": action.name,
      "stepgate.acr.required": action.acr,
      "stepgate.replica": deps.replicaId,
    };
    return inSpan("stepgate.policy.evaluate", attributes, async (span) => {
      const chosen = await requirementFor(deps, input, action);
      if (chosen.choice.rule) span.setAttribute("stepgate.rule", chosen.choice.rule);
      const outcome = await decide(deps, input, chosen);
      span.setAttribute("stepgate.outcome", outcome.kind);
      return chosen.choice.rule ? { ...outcome, rule: chosen.choice.rule } : outcome;
    });
  };
}

interface Chosen {
  choice: RequirementChoice;
  /** The facts a successful answer records (empty while no rule reads facts). */
  factKeys: string[];
}

/**
 * The requirement this StepUp faces (policy/requirement.ts): the action's rules over the
 * transaction, the caller, the context and the subject's facts, read only when a rule needs them.
 */
async function requirementFor(deps: StepUpDeps, input: StepUpInput, action: ActionPolicy): Promise<Chosen> {
  const { policy } = deps;
  const none: Chosen = { choice: { requirement: action, reason: "default", undecided: [] }, factKeys: [] };
  if (action.rules.length === 0 && !policy.readsFacts) return none;
  // A condition never reads details it could not check; a payee only recorded as a fact may be left out.
  const transaction = action.rules.some((r) => r.when.readsTransaction)
    ? conditionTransaction(input.transaction)
    : recordableTransaction(input.transaction);
  // Four HMACs: made only where some rule of the policy reads facts (and so they are recorded).
  const keys = policy.readsFacts
    ? factKeysOf(deps.fingerprint, input.subject, transaction, input.context)
    : undefined;
  const conditionInput = {
    ...(transaction ? { transaction } : {}),
    caller: input.caller,
    context: input.context,
  };
  // Facts are read only if no rule before the first that needs them decides: a PostgreSQL read spared.
  const firstReading = action.rules.findIndex((r) => r.when.facts.size > 0);
  const before = firstReading < 0 ? action : { ...action, rules: action.rules.slice(0, firstReading) };
  const early = chooseRequirement(policy, before, conditionInput, noFacts);
  // Only `action` itself is ever the default requirement, never the shortened copy.
  // A rule that reads facts makes the policy read them: `keys` is there whenever one is reached.
  const decided = firstReading < 0 || early.reason !== "default" || keys === undefined;
  const facts = decided
    ? noFacts
    : await readFacts(deps.facts, keys, deps.clock(), policy.factRetentionSeconds);
  return {
    choice: decided ? early : chooseRequirement(policy, action, conditionInput, facts),
    factKeys: keys ? allFactKeys(keys) : [],
  };
}

function recordableTransaction(details: unknown) {
  try {
    return conditionTransaction(details);
  } catch {
    return undefined;
  }
}

async function decide(deps: StepUpDeps, input: StepUpInput, chosen: Chosen): Promise<DecidedOutcome> {
  const { policy } = deps;
  const action = chosen.choice.requirement;
  const ruleAudit = ruleAuditOf(chosen.choice);
  const now = deps.clock();
  const allowed = methodsFor(policy, action);
  // A bound action is proved for each transaction: checked first, so bad details write nothing.
  const transaction = action.bindTransaction ? boundTransaction(input.transaction) : undefined;
  // max_age 0, or a bound action: no earlier elevation counts (only the session's end is read).
  const levels = action.maxAge > 0 && !transaction ? levelsAtLeast(policy, action.acr) : [];
  const { endedAt, elevations } = await deps.sessions.standing(input.subject, input.sessionId, levels);
  assertThat(endedAt === undefined, "SESSION_ENDED", "session was ended; start a new one");
  const fresh = elevations.find(
    (e) =>
      toSeconds(now) - e.authTime <= action.maxAge &&
      allowed.includes(e.method) &&
      meetsPasskeyNeeds(e, action),
  );
  if (fresh) {
    const { subject, sessionId, caller } = input;
    // Never bound: a bound action reuses no elevation.
    const grant = deps.issueGrant({ subject, sessionId, caller, action, elevation: fresh });
    await deps.audit.record({
      type: "grant.issued",
      subject: input.subject,
      caller: input.caller,
      details: { ...grantAudit(grant), ...ruleAudit },
    });
    return { kind: "grant", grant };
  }
  const enrolled = await deps.factors.enrolled(input.subject);
  const relyingParty = relyingPartyFor(policy, input.caller);
  const passkeys = relyingParty ? passkeysFor(relyingParty, action, enrolled) : [];
  const methods = allowed.filter((m) => (m === "passkey" ? passkeys.length > 0 : enrolled.methods.has(m)));
  // RFC 9470 max_age as the user will meet it: a bound action asks again for each transaction.
  const maxAge = action.bindTransaction ? 0 : action.maxAge;
  if (methods.length === 0) return { kind: "enrollment_required", acr: action.acr, maxAge, methods: allowed };
  const challenge: Challenge = {
    id: randomToken(),
    subject: input.subject,
    sessionId: input.sessionId,
    action: action.name,
    caller: input.caller,
    acr: action.acr,
    methods,
    expiresAt: now + policy.challengeTtl * 1000,
    issuedAt: now,
    ...(methods.includes("totp") ? { totp: enrolled.totp } : {}),
    ...(passkeys.length > 0 ? { passkeys } : {}),
    ...(transaction ? { transaction } : {}),
    ...(chosen.choice.rule ? { rule: chosen.choice.rule } : {}),
    ...(chosen.factKeys.length > 0 ? { facts: chosen.factKeys } : {}),
  };
  const passkeyOptionsJson =
    relyingParty && challenge.passkeys
      ? await requestOptionsJson({
          relyingParty,
          key: deps.challengeKey,
          binding: bindingOf(challenge),
          passkeys: challenge.passkeys,
          requirement: action.passkey,
          timeoutMs: policy.challengeTtl * 1000,
        })
      : undefined;
  await deps.challenges.save(challenge, challengeRetentionMs(challenge, now));
  await deps.audit.record({
    type: "challenge.created",
    subject: input.subject,
    caller: input.caller,
    details: {
      action: action.name,
      methods,
      context: input.context,
      ...(transaction ? { transaction: transaction.digest } : {}),
      ...ruleAudit,
    },
  });
  return {
    kind: "challenge",
    challenge,
    attemptsRemaining: policy.challengeMaxAttempts,
    maxAge,
    ...(passkeyOptionsJson === undefined ? {} : { passkeyOptionsJson }),
  };
}

/** The rule that set the requirement, for the audit trail: its name, why, and rules left undecided. */
function ruleAuditOf(choice: RequirementChoice): Record<string, unknown> {
  if (!choice.rule && choice.undecided.length === 0) return {};
  return {
    rule: choice.rule ?? null,
    rule_reason: choice.reason,
    ...(choice.undecided.length > 0 ? { rules_undecided: choice.undecided } : {}),
  };
}

/** The subject's passkeys that may answer for the action: those of the caller's relying party that meet its demands. */
function passkeysFor(relyingParty: RelyingParty, action: ActionPolicy, enrolled: Enrolled): PasskeyRecord[] {
  if (!enrolled.methods.has("passkey")) return [];
  return usablePasskeys(enrolled.passkeys, relyingParty, action.passkey);
}

/**
 * Whether an earlier elevation meets the action's passkey demands: a passkey's elevation counts
 * only if its amr show what the action needs (hwk: device-bound; mfa: user verified), and never
 * for an action with an AAGUID list. Other methods' elevations are judged by level alone.
 */
function meetsPasskeyNeeds(elevation: Elevation, action: ActionPolicy): boolean {
  if (elevation.method !== "passkey") return true;
  // An elevation does not record the authenticator's model: an AAGUID list is checked at each proof.
  if ((action.passkey.aaguids ?? []).length > 0) return false;
  if (action.passkey.deviceBound && !elevation.amr.includes("hwk")) return false;
  return !action.passkey.userVerification || elevation.amr.includes("mfa");
}
