/**
 * How much a call matters when a replica is saturated, most important first. An action's priority
 * comes from the policy; calls that name no action take their kind's (rpc/call-priority.ts).
 */
export const priorities = ["critical", "high", "normal", "low"] as const;

/** One of `priorities`. */
export type Priority = (typeof priorities)[number];

/** Admission ranks: two per priority, a Verify ahead of everything else of its priority. */
export const rankCount = priorities.length * 2;

/**
 * The call's place in admission order, 0 first: critical Verify, critical, high Verify, high, and
 * so on. A Verify finishes a step-up already under way, so it is the last work of its priority
 * a replica gives up.
 */
export function admissionRank(priority: Priority, isVerify: boolean): number {
  return priorities.indexOf(priority) * 2 + (isVerify ? 0 : 1);
}

/** The priority a rank belongs to. */
export function priorityOfRank(rank: number): Priority {
  return priorities[Math.min(priorities.length - 1, Math.floor(rank / 2))] ?? "low";
}
