import { BlockList, isIP } from "node:net";
import { CelScalar, celEnv, celFunc, isCelError, mapType, objectType, parse, plan } from "@bufbuild/cel";
import { create, createRegistry } from "@bufbuild/protobuf";
import { ConditionFactsSchema, ConditionTransactionSchema } from "@stepgate/api";
import { type CheckedCondition, ConditionError, checkCondition, conditionLimits } from "./condition-check.ts";

/** The facts a condition may read; `secondsSinceStepUp` is -1 when no step-up is known. */
export interface ConditionFacts {
  payeeSeen: boolean;
  deviceSeen: boolean;
  networkSeen: boolean;
  secondsSinceStepUp: number;
}

/** What a condition sees of one StepUp (conditions.proto). `transaction` is normalised (NFC, decimal string). */
export interface ConditionInput {
  transaction?: { amount: string; currency: string; payee: string; resource?: string };
  caller: string;
  /** StepUp's context entries (at most 16, values up to 256 bytes: the request's rules). */
  context: Record<string, string>;
  facts: ConditionFacts;
}

/** A condition compiled once, at policy load. */
export interface Condition extends CheckedCondition {
  source: string;
  /**
   * True or false; undefined when evaluation failed (a missing context key, an invalid in_cidr
   * argument). Takes the input, or its bindings made once for every rule (`conditionBindings`).
   */
  evaluate(input: ConditionInput | ConditionBindings): boolean | undefined;
}

const bindingsKey = Symbol("condition bindings");

/** One StepUp's input as CEL values, made once and shared by every rule evaluated for it. */
export interface ConditionBindings {
  readonly [bindingsKey]: Record<string, unknown>;
}

/** The CEL values of `input`: the transaction and facts messages, the caller, the context map. */
export function conditionBindings(input: ConditionInput): ConditionBindings {
  const t = input.transaction;
  return {
    [bindingsKey]: {
      transaction: create(ConditionTransactionSchema, {
        present: t !== undefined,
        amount: t ? Number(t.amount) : 0,
        currency: t?.currency ?? "",
        payee: t?.payee ?? "",
        resource: t?.resource ?? "",
      }),
      facts: create(ConditionFactsSchema, {
        ...input.facts,
        secondsSinceStepUp: BigInt(input.facts.secondsSinceStepUp),
      }),
      caller: input.caller,
      context: new Map(Object.entries(input.context)),
    },
  };
}

const bindingsOf = (input: ConditionInput | ConditionBindings) =>
  // biome-ignore lint/suspicious/noExplicitAny: the planned function takes the environment's bindings.
  (bindingsKey in input ? input[bindingsKey] : conditionBindings(input)[bindingsKey]) as any;

// in_cidr("192.0.2.7", "192.0.2.0/24"): a range test over IPv4 or IPv6; false for what is no address.
const inCidr = celFunc("in_cidr", [CelScalar.STRING, CelScalar.STRING], CelScalar.BOOL, (ip, cidr) => {
  const range = rangeOf(cidr);
  const family = isIP(ip);
  return (
    range !== undefined && family === range.family && range.list.check(ip, family === 4 ? "ipv4" : "ipv6")
  );
});

// Ranges are few (the policy's literals): each is parsed once. Bounded, since a range could also come from context.
const ranges = new Map<string, { family: number; list: BlockList } | undefined>();
function rangeOf(cidr: string): { family: number; list: BlockList } | undefined {
  if (ranges.has(cidr)) return ranges.get(cidr);
  const [network = "", prefix = ""] = cidr.split("/");
  const family = isIP(network);
  const bits = Number(prefix);
  let range: { family: number; list: BlockList } | undefined;
  if (family !== 0 && /^\d{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128)) {
    const list = new BlockList();
    list.addSubnet(network, bits, family === 4 ? "ipv4" : "ipv6");
    range = { family, list };
  }
  if (ranges.size >= 1024) ranges.clear();
  ranges.set(cidr, range);
  return range;
}

const env = celEnv({
  registry: createRegistry(ConditionTransactionSchema, ConditionFactsSchema),
  variables: {
    transaction: objectType(ConditionTransactionSchema),
    facts: objectType(ConditionFactsSchema),
    caller: CelScalar.STRING,
    context: mapType(CelScalar.STRING, CelScalar.STRING),
  },
  funcs: [inCidr],
});

/**
 * Parses, checks (`checkCondition`) and plans a rule's `when`. Throws ConditionError when it does
 * not parse, is longer than 1024 bytes, breaks the environment's types or limits, or is not a bool.
 */
export function compileCondition(source: string): Condition {
  if (Buffer.byteLength(source) > conditionLimits.sourceBytes)
    throw new ConditionError(`longer than ${conditionLimits.sourceBytes} bytes`);
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(source);
  } catch (error) {
    throw new ConditionError(`does not parse: ${(error as Error).message.split("\n")[0]}`);
  }
  const checked = checkCondition(parsed.expr);
  if (checked.type !== "bool") throw new ConditionError(`is a ${checked.type}, not a bool`);
  const run = plan(env, parsed);
  return {
    ...checked,
    source,
    evaluate(input) {
      const result = run(bindingsOf(input));
      return isCelError(result) || typeof result !== "boolean" ? undefined : result;
    },
  };
}

/** A placeholder for a condition that did not compile (the policy then fails to load). */
export const neverCondition: Condition = {
  type: "bool",
  facts: new Set(),
  readsTransaction: false,
  source: "false",
  evaluate: () => false,
};
