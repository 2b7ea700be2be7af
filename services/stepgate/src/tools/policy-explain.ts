import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError } from "../config/config-error.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import type { ConditionFacts } from "../policy/condition.ts";
import { loadPolicyFile } from "../policy/policy-reload.ts";
import { chooseRequirement } from "../policy/requirement.ts";
import { conditionTransaction } from "../stepup/transaction-binding.ts";

// `pnpm policy:explain [--policy FILE] [--json] [REQUEST]`: which requirement a StepUp would face,
// and which rule set it, from the policy file alone (no replica is asked). REQUEST is JSON, as an
// argument or on stdin: { "action", "caller"?, "context"?, "transaction"?, "facts"? }, where facts
// are { payee_seen, device_seen, network_seen, seconds_since_step_up } (default: nothing seen) or
// "unavailable" (their store down). Exits 0 with the decision, 2 on a bad policy or request.
const usage = "usage: pnpm policy:explain [--policy FILE] [--json] '<request JSON>'\n";
const fail = (message: string): never => {
  process.stderr.write(`policy explain: ${message}\n`);
  process.exit(2);
};

interface Request {
  action: string;
  caller: string;
  context: Record<string, string>;
  transaction?: unknown;
  facts: ConditionFacts | undefined;
}

function parseRequest(text: string): Request {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return fail("the request is not JSON");
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw))
    return fail("the request must be a JSON object");
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r))
    if (!["action", "caller", "context", "transaction", "facts"].includes(key))
      fail(`unknown field "${key}"`);
  if (typeof r.action !== "string" || r.action === "") fail("action: a policy action name is required");
  const context = r.context ?? {};
  if (
    typeof context !== "object" ||
    context === null ||
    Object.values(context).some((v) => typeof v !== "string")
  )
    fail("context: an object of strings");
  return {
    action: r.action as string,
    caller: typeof r.caller === "string" ? r.caller : "",
    context: context as Record<string, string>,
    ...(r.transaction === undefined ? {} : { transaction: r.transaction }),
    facts: factsOf(r.facts),
  };
}

function factsOf(raw: unknown): ConditionFacts | undefined {
  if (raw === "unavailable") return undefined;
  const f = (raw ?? {}) as Record<string, unknown>;
  const flag = (k: string) =>
    f[k] === undefined
      ? false
      : f[k] === true
        ? true
        : f[k] === false
          ? false
          : fail(`facts.${k}: true or false`);
  const age = f.seconds_since_step_up ?? -1;
  if (!Number.isInteger(age) || (age as number) < -1)
    fail("facts.seconds_since_step_up: an integer, -1 for none");
  return {
    payeeSeen: flag("payee_seen"),
    deviceSeen: flag("device_seen"),
    networkSeen: flag("network_seen"),
    secondsSinceStepUp: age as number,
  };
}

const { values, positionals } = (() => {
  try {
    return parseArgs({
      options: { policy: { type: "string" }, json: { type: "boolean", default: false } },
      allowPositionals: true,
    });
  } catch (error) {
    return fail(`${(error as Error).message}\n${usage}`);
  }
})();
const policyFile =
  values.policy ?? process.env.STEPGATE_POLICY_FILE ?? "services/stepgate/policy/example.yaml";
const { policy } = (() => {
  try {
    return loadPolicyFile(policyFile);
  } catch (error) {
    return fail(error instanceof ConfigError ? error.message : String(error));
  }
})();
const request = parseRequest(positionals[0] ?? readFileSync(0, "utf8"));
const action = policy.actions.get(request.action) ?? fail(`no action "${request.action}" in ${policyFile}`);
const transaction = (() => {
  try {
    return conditionTransaction(request.transaction);
  } catch (error) {
    return fail(error instanceof StepgateError ? `transaction: ${error.message}` : String(error));
  }
})();
const input = { caller: request.caller, context: request.context, ...(transaction ? { transaction } : {}) };
const choice = chooseRequirement(policy, action, input, request.facts);
const rules = action.rules.map((r) => {
  const result =
    r.when.facts.size > 0 && request.facts === undefined
      ? "undecided"
      : (r.when.evaluate({
          ...input,
          facts: request.facts ?? {
            payeeSeen: false,
            deviceSeen: false,
            networkSeen: false,
            secondsSinceStepUp: -1,
          },
        }) ?? "undecided");
  return { name: r.name, when: r.when.source, result: String(result) };
});
const req = choice.requirement;
const requirement = {
  acr: req.acr,
  max_age: req.maxAge,
  methods: req.methods,
  grant_ttl: req.grantTtl,
  bind_transaction: req.bindTransaction,
  passkey: req.passkey,
};
if (values.json) {
  process.stdout.write(
    `${JSON.stringify({ action: action.name, rule: choice.rule ?? null, reason: choice.reason, requirement, rules })}\n`,
  );
} else {
  const lines = [
    `${action.name}: ${choice.rule ? `rule ${choice.rule} (${choice.reason})` : "the action's own requirement"}`,
    `  requires ${req.acr}, max_age ${req.maxAge} s, methods ${req.methods.join(" ")}, grant_ttl ${req.grantTtl} s${req.bindTransaction ? ", bound to the transaction" : ""}`,
    ...rules.map(
      (r) => `  ${r.name === choice.rule ? "->" : "  "} ${r.name.padEnd(28)} ${r.result.padEnd(9)} ${r.when}`,
    ),
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}
