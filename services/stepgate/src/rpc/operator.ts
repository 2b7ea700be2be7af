import { createContextKey, type HandlerContext, type Interceptor } from "@connectrpc/connect";
import { type AdminService, operatorHeader } from "@stepgate/api";
import { handlerContextOf } from "@stepgate/grpc-bridge";
import { type Operator, operatorCaller } from "../domain/operator.ts";
import { assertOperatorMay, type OperatorScope, type Operators } from "../policy/operators.ts";
import { setCallerOf } from "./caller.ts";
import { principalFromCertificate } from "./certificate-principals.ts";
import { reasonError } from "./errors.ts";

/**
 * Names the operator of one AdminService call; fails with OPERATOR_NOT_ALLOWED (PERMISSION_DENIED)
 * or CALLER_UNKNOWN (UNAUTHENTICATED).
 */
export type IdentifyOperator = (ctx: HandlerContext) => Operator;

// Set once per call by `identifyOperators`, before traffic shaping and the handler read it.
const operatorKey = createContextKey<Operator | undefined>(undefined, { description: "stepgate operator" });

/** The operator `identifyOperators` found for this call. */
export function operatorOf(ctx: HandlerContext): Operator {
  const operator = ctx.values.get(operatorKey);
  if (operator === undefined) throw new Error("the call's operator was not identified");
  return operator;
}

/** The scope each AdminService command needs: a command missing here fails the typecheck. */
const commandScopes: Record<keyof typeof AdminService.method, OperatorScope> = {
  getReplicaStatus: "status",
  listSubjectFactors: "factors.read",
  removeSubjectFactor: "factors.manage",
  endSubjectSession: "sessions.end",
  unlockSubject: "subjects.unlock",
  tailAuditLog: "audit.read",
  rotateSigningKey: "keys.rotate",
  resealValues: "reseal",
};

/**
 * The interceptor in front of every AdminService call, in the place `identifyCallers` has for the
 * other services: names the operator, checks that the policy gives them the command's scope, and
 * names the call's caller `operator:<name>` for shaping and the audit trail. A call that fails
 * here ran nothing.
 */
export function identifyOperators(identify: IdentifyOperator, operators: Operators): Interceptor {
  return (next) => (req) => {
    const ctx = handlerContextOf(req);
    const operator = identify(ctx);
    const scope = commandScopes[req.method.localName as keyof typeof commandScopes];
    // An unlisted command is nobody's: fail closed.
    if (scope === undefined) throw reasonError("OPERATOR_NOT_ALLOWED", "this command has no operator scope");
    assertOperatorMay(operators, operator.name, scope);
    ctx.values.set(operatorKey, operator);
    setCallerOf(ctx, operatorCaller(operator.name));
    return next(req);
  };
}

/** Insecure development mode: the operator is whom the `stepgate-operator` header names, if the policy lists them. */
export function operatorFromHeader(operators: Operators): IdentifyOperator {
  return (ctx) => {
    const name = ctx.requestHeader.get(operatorHeader) ?? "";
    if (!operators.scopes.has(name)) {
      throw reasonError(
        "OPERATOR_NOT_ALLOWED",
        `AdminService calls need the ${operatorHeader} header naming an operator of the policy`,
      );
    }
    return { name, identity: `${operatorHeader} header` };
  };
}

/**
 * Mutual TLS: the operator is whom the policy's `operators.<name>.peers` map the client
 * certificate to (as `callers` map theirs, rpc/certificate-principals.ts). A certificate of an
 * ordinary calling service is refused OPERATOR_NOT_ALLOWED; one that names nobody CALLER_UNKNOWN.
 */
export function operatorFromCertificate(
  operators: Operators,
  callerPeers: ReadonlyMap<string, string>,
): IdentifyOperator {
  const asOperator = principalFromCertificate(operators.peers, "operator");
  const asCaller = principalFromCertificate(callerPeers, "calling service");
  return (ctx) => {
    const identified = asOperator(ctx);
    if ("principal" in identified) return { name: identified.principal, identity: identified.peer };
    if ("principal" in asCaller(ctx)) {
      throw reasonError("OPERATOR_NOT_ALLOWED", "a calling service's certificate cannot call AdminService");
    }
    throw reasonError("CALLER_UNKNOWN", identified.refusal);
  };
}
