import {
  type ConditionBindings,
  type ConditionFacts,
  type ConditionInput,
  conditionBindings,
} from "./condition.ts";
import type { ActionPolicy, Policy } from "./policy.ts";

/**
 * Why the requirement is what it is: `matched` (the rule's condition held), `assumed` (it could not
 * be decided — a fact unreadable, an evaluation error — and the rule asks at least as much as the
 * action's default, so it applies), or `default` (no rule applied).
 */
export type RequirementReason = "matched" | "assumed" | "default";

/** The requirement one StepUp faces, and the rule that set it. */
export interface RequirementChoice {
  requirement: ActionPolicy;
  /** The rule's name; undefined for the action's own fields. */
  rule?: string;
  reason: RequirementReason;
  /** The rules that could not be decided, by name, for the audit trail. */
  undecided: string[];
}

/**
 * The requirement of `action` for one StepUp: the first rule whose condition holds, else the
 * action's own fields. A rule that cannot be decided — it reads facts and `facts` is undefined
 * (their store is down), or its evaluation fails (e.g. a context key it reads is absent) — fails
 * towards the stricter requirement: it applies when it asks at least as much as the action's
 * default in every respect (`atLeastAsStrict`), and is passed over otherwise. Never throws.
 */
export function chooseRequirement(
  policy: Pick<Policy, "levels">,
  action: ActionPolicy,
  input: Omit<ConditionInput, "facts">,
  facts: ConditionFacts | undefined,
): RequirementChoice {
  const undecided: string[] = [];
  // Made on first use, once for every rule: most actions have no rules.
  let bindings: ConditionBindings | undefined;
  for (const rule of action.rules) {
    bindings ??= conditionBindings({ ...input, facts: facts ?? noFacts });
    const decided =
      rule.when.facts.size > 0 && facts === undefined ? undefined : rule.when.evaluate(bindings);
    if (decided === true)
      return { requirement: rule.requirement, rule: rule.name, reason: "matched", undecided };
    if (decided === undefined) {
      undecided.push(rule.name);
      if (atLeastAsStrict(policy, rule.requirement, action))
        return { requirement: rule.requirement, rule: rule.name, reason: "assumed", undecided };
    }
  }
  return { requirement: action, reason: "default", undecided };
}

/** What a condition sees of facts that were not needed (no rule reads them): nothing seen. */
export const noFacts: ConditionFacts = {
  payeeSeen: false,
  deviceSeen: false,
  networkSeen: false,
  secondsSinceStepUp: -1,
};

/**
 * Whether `a` asks at least as much as `b` in every respect: a level at least as high, a max_age
 * and grant lifetime no longer, no method `b` does not allow, transaction binding and the passkey
 * demands (user verification, device-bound, authenticator models) wherever `b` has them.
 */
export function atLeastAsStrict(policy: Pick<Policy, "levels">, a: ActionPolicy, b: ActionPolicy): boolean {
  const level = (acr: string) => policy.levels.indexOf(acr);
  const [aModels, bModels] = [a.passkey.aaguids ?? [], b.passkey.aaguids ?? []];
  const aaguidsAsStrict =
    bModels.length === 0 || (aModels.length > 0 && aModels.every((g) => bModels.includes(g)));
  return (
    level(a.acr) >= level(b.acr) &&
    a.maxAge <= b.maxAge &&
    a.grantTtl <= b.grantTtl &&
    a.methods.every((m) => b.methods.includes(m)) &&
    (a.bindTransaction || !b.bindTransaction) &&
    (a.passkey.userVerification || !b.passkey.userVerification) &&
    (a.passkey.deviceBound || !b.passkey.deviceBound) &&
    aaguidsAsStrict
  );
}

/**
 * The requirement a challenge was issued under: its action's, or that of the rule it names.
 * Undefined when the policy no longer has that action or rule (it was reloaded since).
 */
export function requirementOf(
  policy: Pick<Policy, "actions">,
  challenge: { action: string; rule?: string },
): ActionPolicy | undefined {
  const action = policy.actions.get(challenge.action);
  if (!action || challenge.rule === undefined) return action;
  return action.rules.find((r) => r.name === challenge.rule)?.requirement;
}
