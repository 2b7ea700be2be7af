import { StepgateError } from "../domain/stepgate-error.ts";
import type { Policy } from "./policy.ts";

/** What a call needs of its calling service's scope. */
export type CallerNeed =
  /** StepUp, Verify, CheckGrant: the action. */
  | { action: string }
  /** EndSession: some action (ending a session spends nothing but is only for services that step up). */
  | { anyAction: true }
  /** ListFactors ("read") or a factor change ("manage"). */
  | { factors: "read" | "manage" };

/**
 * Checks `caller` against the policy's `callers` scopes. Without scopes in the policy every caller
 * may do everything. Fails with CALLER_NOT_ALLOWED (PERMISSION_DENIED) when the caller is not
 * listed or its scope lacks what the call needs.
 */
export function assertCallerMay(
  policy: Pick<Policy, "callerScopes">,
  caller: string,
  need: CallerNeed,
): void {
  const scopes = policy.callerScopes;
  if (scopes === undefined) return;
  const scope = scopes.get(caller);
  if (scope && allows(scope.actions, scope.factors, need)) return;
  throw new StepgateError("CALLER_NOT_ALLOWED", "this calling service is not allowed to make this call");
}

function allows(actions: Set<string>, factors: "none" | "read" | "manage", need: CallerNeed): boolean {
  if ("action" in need) return actions.has("*") || actions.has(need.action);
  if ("anyAction" in need) return actions.size > 0;
  return factors === "manage" || (factors === "read" && need.factors === "read");
}
