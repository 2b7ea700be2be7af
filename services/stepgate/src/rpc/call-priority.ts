import type { Priority } from "../domain/priority.ts";

/** How a call ranks when its replica is saturated. */
export interface CallPriority {
  priority: Priority;
  /** A Verify goes ahead of every other call of its priority. */
  isVerify: boolean;
}

/**
 * The priority of calls that name no action, by method (`Service/Method` names without the package):
 * ending a session and publishing keys stay high (a logout and offline checks must go through),
 * factor changes normal, listing factors low. Calls that name an action take its priority.
 */
const kindPriorities: Readonly<Record<string, Priority>> = {
  "StepUpService/EndSession": "high",
  "StepUpService/GetJwks": "high",
  "FactorService/EnrollTotp": "normal",
  "FactorService/ConfirmTotp": "normal",
  "FactorService/CreateRecoveryCodes": "normal",
  "FactorService/RemoveFactor": "normal",
  "FactorService/ListFactors": "low",
  // An operator's view of a replica under load must get through; their other commands are rare.
  "AdminService/GetReplicaStatus": "high",
  "AdminService/EndSubjectSession": "high",
  "AdminService/RemoveSubjectFactor": "normal",
  "AdminService/UnlockSubject": "normal",
  "AdminService/RotateSigningKey": "normal",
  "AdminService/ListSubjectFactors": "low",
  "AdminService/TailAuditLog": "low",
  "AdminService/ResealValues": "low",
  // The no-op baseline ranks with the calls it is compared with (StepUp, Verify of critical actions).
  "BenchService/Noop": "high",
};

/** Methods whose priority is their request's action's. */
const byAction = new Set(["StepUpService/StepUp", "StepUpService/Verify", "StepUpService/CheckGrant"]);

/**
 * The priority of one call of `method` (`Service/Method`) carrying `request`. `actionPriority` gives an
 * action's priority from the policy (undefined for an unknown action, which ranks low: it will be
 * refused anyway).
 */
export function callPriority(
  method: string,
  request: unknown,
  actionPriority: (action: string) => Priority | undefined,
): CallPriority {
  const isVerify = method === "StepUpService/Verify";
  if (byAction.has(method)) {
    const action = (request as { action?: unknown }).action;
    const priority = typeof action === "string" ? actionPriority(action) : undefined;
    return { priority: priority ?? "low", isVerify };
  }
  return { priority: kindPriorities[method] ?? "normal", isVerify };
}
