/** An operator as one AdminService call identified it. */
export interface Operator {
  /** The operator's name in the policy's `operators`. */
  name: string;
  /**
   * How the call proved it: the client certificate's name that matched `peers` (a SPIFFE ID or a
   * DNS name), or "stepgate-operator header" in insecure development mode.
   */
  identity: string;
}

/** The caller an operator's calls are counted and audited as; no calling service's name has a colon. */
export const operatorCaller = (name: string): string => `operator:${name}`;

/** What an operator's audit event carries beside its own details: who, proven how, by which command. */
export function operatorDetails(operator: Operator, command: string): Record<string, string> {
  return { operator: operator.name, operator_identity: operator.identity, command };
}
