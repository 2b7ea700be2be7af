import { normalizeTransaction } from "@stepgate/grant";
import { parsePolicy } from "@stepgate/server/policy/policy";
import { chooseRequirement } from "@stepgate/server/policy/requirement";
import {
  type RuleScenario,
  ruledAction,
  ruledRequest,
  rulePolicies,
  rulePolicyText,
} from "./rule-policies.ts";

/** The in-process cost of one scenario's rules: µs per `chooseRequirement`, best of the rounds. */
export interface RuleEvaluation {
  scenario: RuleScenario;
  rules: number;
  micros: number;
}

// What facts say for the measured requests: the device was seen (new_device does not hold).
const facts = { payeeSeen: true, deviceSeen: true, networkSeen: true, secondsSinceStepUp: 30 };

/**
 * µs of this thread's CPU per `chooseRequirement` over `ruledRequest` for each scenario's policy
 * (compiled by `parsePolicy`, as a replica loads it), best of `rounds` rounds of `calls`, since a
 * shared machine only adds. Throws if a rule holds: every rule must be evaluated.
 */
export function measureRuleEvaluation(rounds: number, calls: number): RuleEvaluation[] {
  const input = {
    transaction: normalizeTransaction(ruledRequest.transaction),
    caller: ruledRequest.caller,
    context: ruledRequest.context,
  };
  return Object.entries(rulePolicies).map(([scenario, rules]) => {
    const policy = parsePolicy(rulePolicyText(rules), scenario);
    const action = policy.actions.get(ruledAction);
    if (!action) throw new Error(`${scenario}: no ${ruledAction}`);
    const choice = chooseRequirement(policy, action, input, facts);
    if (choice.reason !== "default")
      throw new Error(`${scenario}: rule ${choice.rule} holds (${choice.reason})`);
    let best = Number.POSITIVE_INFINITY;
    for (let round = 0; round < rounds; round++) {
      const started = process.threadCpuUsage();
      for (let i = 0; i < calls; i++) chooseRequirement(policy, action, input, facts);
      const used = process.threadCpuUsage(started);
      best = Math.min(best, (used.user + used.system) / calls);
    }
    return { scenario: scenario as RuleScenario, rules: rules.length, micros: best };
  });
}
