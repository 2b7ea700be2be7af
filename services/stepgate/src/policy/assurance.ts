import type { MethodName } from "../domain/method.ts";
import type { ActionPolicy, Policy } from "./policy.ts";

/** True when `acr` is at least as strong as `required` in the policy's ordered levels. */
export function reaches(policy: Policy, acr: string, required: string): boolean {
  const have = policy.levels.indexOf(acr);
  return have >= 0 && have >= policy.levels.indexOf(required);
}

/** The methods the action allows that reach its level (a passkey: at its strongest, device-bound and user-verified). */
export function methodsFor(policy: Policy, action: ActionPolicy): MethodName[] {
  return action.methods.filter((m) => {
    const method = policy.methods[m];
    return method !== undefined && reaches(policy, method.deviceBoundAcr ?? method.acr, action.acr);
  });
}

/** The levels that satisfy `required`: it and every stronger one. */
export function levelsAtLeast(policy: Policy, required: string): string[] {
  return policy.levels.slice(Math.max(0, policy.levels.indexOf(required)));
}

// Every requirement the policy can set: each action's own and each of its rules'.
const requirements = (policy: Pick<Policy, "actions">): ActionPolicy[] =>
  [...policy.actions.values()].flatMap((a) => [a, ...a.rules.map((r) => r.requirement)]);

/** How long an elevation is worth keeping, in ms: as long as the most lenient requirement accepts it (at least 1 s). */
export function elevationLifetimeMs(policy: Pick<Policy, "actions">): number {
  return Math.max(1, ...requirements(policy).map((a) => a.maxAge)) * 1000;
}

/** The longest grant lifetime of any action or rule, in ms: revocations must outlive every grant. */
export function longestGrantLifetimeMs(policy: Pick<Policy, "actions">): number {
  return Math.max(...requirements(policy).map((a) => a.grantTtl)) * 1000;
}

/**
 * How long the end of a factor must be remembered, in ms: past every elevation it produced and
 * every grant issued from them, plus a minute for clock skew.
 */
export function factorRevocationLifetimeMs(policy: Pick<Policy, "actions">): number {
  return Math.max(elevationLifetimeMs(policy), longestGrantLifetimeMs(policy)) + 60_000;
}
