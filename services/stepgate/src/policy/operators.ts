import { z } from "zod";
import { StepgateError } from "../domain/stepgate-error.ts";
import { callerName, peerName } from "./peer-names.ts";

/** What an operator may be allowed to do, one scope per AdminService command. */
export const operatorScopes = [
  "status",
  "factors.read",
  "factors.manage",
  "sessions.end",
  "subjects.unlock",
  "audit.read",
  "keys.rotate",
  "reseal",
] as const;

export type OperatorScope = (typeof operatorScopes)[number];

/** The policy's `operators` section: deny by default, so absent means nobody. */
export const operatorsSchema = z
  .record(
    callerName,
    z.strictObject({
      // SPIFFE IDs or DNS names whose client certificates name this operator (none of a caller's).
      peers: z.array(peerName).default([]),
      scopes: z.array(z.union([z.literal("*"), z.enum(operatorScopes)])).min(1),
    }),
  )
  .optional();

/** The operators of the policy: each one's scopes, and the certificate names that name each. */
export interface Operators {
  /** Each operator's scopes ("*" expanded); empty without an `operators` section. */
  scopes: Map<string, Set<OperatorScope>>;
  /** Client certificate identities (a SPIFFE ID, or a DNS name) to the operator each names. */
  peers: Map<string, string>;
}

/**
 * The `operators` section as the service uses it. A peer listed for two operators, or for an
 * operator and a calling service (`callerPeers`), is added to `problems`: a certificate must name
 * one principal, and an ordinary service's certificate never an operator.
 */
export function operatorsOf(
  doc: z.infer<typeof operatorsSchema>,
  callerPeers: ReadonlyMap<string, string>,
  source: string,
  problems: string[],
): Operators {
  const operators: Operators = { scopes: new Map(), peers: new Map() };
  for (const [name, operator] of Object.entries(doc ?? {})) {
    const scopes = operator.scopes.includes("*") ? operatorScopes : operator.scopes;
    operators.scopes.set(name, new Set(scopes as OperatorScope[]));
    for (const peer of operator.peers) {
      const caller = callerPeers.get(peer);
      const other = operators.peers.get(peer);
      if (caller !== undefined)
        problems.push(`${source}: operators.${name}.peers: ${peer} already names the caller ${caller}`);
      else if (other !== undefined)
        problems.push(`${source}: operators.${name}.peers: ${peer} already names the operator ${other}`);
      operators.peers.set(peer, name);
    }
  }
  return operators;
}

/**
 * Checks that `operator` may run a command of `scope`. Fails with OPERATOR_NOT_ALLOWED
 * (PERMISSION_DENIED, metadata scope) when it is no operator of the policy or lacks the scope.
 */
export function assertOperatorMay(operators: Operators, operator: string, scope: OperatorScope): void {
  if (operators.scopes.get(operator)?.has(scope)) return;
  throw new StepgateError("OPERATOR_NOT_ALLOWED", `this operator is not allowed to run ${scope} commands`, {
    metadata: { scope },
  });
}
