import type { parse } from "@bufbuild/cel";
import { type DescMessage, ScalarType } from "@bufbuild/protobuf";
import { ConditionFactsSchema, ConditionTransactionSchema } from "@stepgate/api";

/** A parsed CEL expression (cel.expr.Expr). */
export type Expr = ReturnType<typeof parse>["expr"];

/** The types a condition's values take (CEL's, for the part of CEL conditions may use). */
export type ConditionType =
  | "bool"
  | "int"
  | "uint"
  | "double"
  | "string"
  | "bytes"
  | "null"
  | "context"
  | "transaction"
  | "facts"
  | "list";

/** What the static check learnt of an expression: its type, and which facts it reads. */
export interface CheckedCondition {
  type: ConditionType;
  /** The `facts` fields it reads (their proto names, e.g. `payee_seen`). */
  facts: Set<string>;
  /** Whether it reads `transaction` at all. */
  readsTransaction: boolean;
}

/** The bounds on one condition, so that evaluating it costs a bounded, small amount. */
export const conditionLimits = { sourceBytes: 1024, nodes: 200 };

const scalarTypes: Partial<Record<ScalarType, ConditionType>> = {
  [ScalarType.BOOL]: "bool",
  [ScalarType.DOUBLE]: "double",
  [ScalarType.STRING]: "string",
  [ScalarType.INT64]: "int",
};

// Field types from the published messages, so the proto is the one description of the environment.
function fieldsOf(schema: DescMessage): Map<string, ConditionType> {
  return new Map(
    schema.fields.map((f) => [f.name, (f.fieldKind === "scalar" && scalarTypes[f.scalar]) || "null"]),
  );
}
const objectFields: Record<"transaction" | "facts", Map<string, ConditionType>> = {
  transaction: fieldsOf(ConditionTransactionSchema),
  facts: fieldsOf(ConditionFactsSchema),
};
const variables: Record<string, ConditionType> = {
  transaction: "transaction",
  facts: "facts",
  caller: "string",
  context: "context",
};

const numeric = new Set<ConditionType>(["int", "uint", "double"]);
const ordered = new Set<ConditionType>(["int", "uint", "double", "string", "bytes", "bool"]);
const stringMethods = new Set(["startsWith", "endsWith", "contains"]);

/** A condition that does not check: the message names what is wrong, for the policy's error. */
export class ConditionError extends Error {}

/**
 * Checks a parsed condition against the typed environment (conditions.proto): known variables and
 * fields only, operators on the types CEL defines them for, no comprehensions (`all`, `exists`,
 * `map`, `filter`), no `matches`, at most `conditionLimits.nodes` nodes. Returns its type; throws
 * ConditionError naming the first problem. A stand-in for CEL's type checker, which
 * @bufbuild/cel 0.6.1 does not publish.
 */
export function checkCondition(expr: Expr): CheckedCondition {
  const found: CheckedCondition = { type: "null", facts: new Set(), readsTransaction: false };
  let nodes = 0;
  const visit = (e: Expr | undefined): ConditionType => {
    if (!e) throw new ConditionError("incomplete expression");
    if (++nodes > conditionLimits.nodes) throw new ConditionError(`more than ${conditionLimits.nodes} terms`);
    const kind = e.exprKind;
    switch (kind.case) {
      case "constExpr":
        return constantType(kind.value.constantKind.case);
      case "identExpr": {
        const type = variables[kind.value.name];
        if (!type) throw new ConditionError(`unknown variable "${kind.value.name}"`);
        if (type === "transaction") found.readsTransaction = true;
        return type;
      }
      case "selectExpr": {
        const operand = visit(kind.value.operand);
        const { field, testOnly } = kind.value;
        if (operand === "context") return testOnly ? "bool" : "string";
        if (operand !== "transaction" && operand !== "facts")
          throw new ConditionError(`"${field}" selected on a ${operand}`);
        const type = objectFields[operand].get(field);
        if (!type) throw new ConditionError(`unknown field ${operand}.${field}`);
        if (operand === "facts") found.facts.add(field);
        return testOnly ? "bool" : type;
      }
      case "callExpr":
        return callType(kind.value.function, kind.value.target, kind.value.args);
      case "listExpr":
        for (const element of kind.value.elements) visit(element);
        return "list";
      case "structExpr":
        throw new ConditionError("message and map literals are not allowed");
      case "comprehensionExpr":
        throw new ConditionError("comprehensions (all, exists, exists_one, map, filter) are not allowed");
      default:
        throw new ConditionError("incomplete expression");
    }
  };
  const callType = (fn: string, target: Expr | undefined, args: Expr[]): ConditionType => {
    const argTypes = args.map(visit);
    const targetType = target ? visit(target) : undefined;
    const [a, b] = argTypes;
    const same = () => {
      if (a !== b) throw new ConditionError(`${fn} applied to ${a} and ${b}`);
      return a as ConditionType;
    };
    switch (fn) {
      case "_&&_":
      case "_||_":
        if (a !== "bool" || b !== "bool")
          throw new ConditionError(`${fn} needs two bools, not ${a} and ${b}`);
        return "bool";
      case "!_":
        if (a !== "bool") throw new ConditionError(`! applied to ${a}`);
        return "bool";
      case "_==_":
      case "_!=_":
        // CEL compares numbers across int, uint and double.
        if (a !== b && !(numeric.has(a as ConditionType) && numeric.has(b as ConditionType)))
          throw new ConditionError(`${fn} compares ${a} with ${b}`);
        return "bool";
      case "_<_":
      case "_<=_":
      case "_>_":
      case "_>=_":
        if (
          !ordered.has(a as ConditionType) ||
          (a !== b && !(numeric.has(a as ConditionType) && numeric.has(b as ConditionType)))
        )
          throw new ConditionError(`${fn} compares ${a} with ${b}`);
        return "bool";
      case "_+_":
        if (!numeric.has(a as ConditionType) && a !== "string") throw new ConditionError(`+ applied to ${a}`);
        return same();
      case "_-_":
      case "_*_":
      case "_/_":
      case "_%_":
        if (!numeric.has(a as ConditionType)) throw new ConditionError(`${fn} applied to ${a}`);
        return same();
      case "-_":
        if (!numeric.has(a as ConditionType)) throw new ConditionError(`- applied to ${a}`);
        return a as ConditionType;
      case "_?_:_":
        if (a !== "bool") throw new ConditionError(`the ternary's condition is ${a}`);
        if (argTypes[1] !== argTypes[2])
          throw new ConditionError(`the ternary's branches are ${argTypes[1]} and ${argTypes[2]}`);
        return argTypes[1] as ConditionType;
      case "_[_]":
        if (a === "context" && b === "string") return "string";
        throw new ConditionError(`[] applied to ${a} with ${b}`);
      case "@in":
        if (b === "context" && a === "string") return "bool";
        if (b === "list") return "bool";
        throw new ConditionError(`in applied to ${a} and ${b}`);
      case "size":
        if ((targetType ?? a) === "string" || (targetType ?? a) === "list" || (targetType ?? a) === "context")
          return "int";
        throw new ConditionError(`size of ${targetType ?? a}`);
      case "in_cidr":
        if (target || a !== "string" || b !== "string" || argTypes.length !== 2)
          throw new ConditionError("in_cidr takes (ip string, cidr string)");
        return "bool";
      default:
        if (stringMethods.has(fn) && targetType === "string" && a === "string" && argTypes.length === 1)
          return "bool";
        throw new ConditionError(`unknown function or overload "${fn}"`);
    }
  };
  found.type = visit(expr);
  return found;
}

function constantType(kind: string | undefined): ConditionType {
  switch (kind) {
    case "boolValue":
      return "bool";
    case "int64Value":
      return "int";
    case "uint64Value":
      return "uint";
    case "doubleValue":
      return "double";
    case "stringValue":
      return "string";
    case "bytesValue":
      return "bytes";
    case "nullValue":
      return "null";
    default:
      throw new ConditionError("durations and timestamps are not part of the environment");
  }
}
