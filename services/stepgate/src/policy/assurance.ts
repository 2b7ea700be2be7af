import type { ActionPolicy, MethodName, Policy } from "../config/policy.ts";

/** True when `acr` is at least as strong as `required` in the policy's ordered levels. */
export function reaches(policy: Policy, acr: string, required: string): boolean {
  const have = policy.levels.indexOf(acr);
  return have >= 0 && have >= policy.levels.indexOf(required);
}

/** The methods the action allows that reach its level. */
export function methodsFor(policy: Policy, action: ActionPolicy): MethodName[] {
  return action.methods.filter((m) => {
    const method = policy.methods[m];
    return method !== undefined && reaches(policy, method.acr, action.acr);
  });
}

/** The levels that satisfy `required`: it and every stronger one. */
export function levelsAtLeast(policy: Policy, required: string): string[] {
  return policy.levels.slice(Math.max(0, policy.levels.indexOf(required)));
}
