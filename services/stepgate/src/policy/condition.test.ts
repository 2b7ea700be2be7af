import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ConditionInput } from "./condition.ts";
import { compileCondition } from "./condition.ts";
import { ConditionError } from "./condition-check.ts";

const input = (over: Partial<ConditionInput> = {}): ConditionInput => ({
  transaction: { amount: "1200.50", currency: "EUR", payee: "ACME Ltd" },
  caller: "payments",
  context: { network: "10.1.2.3", device: "d-1" },
  facts: { payeeSeen: false, deviceSeen: true, networkSeen: false, secondsSinceStepUp: 90 },
  ...over,
});

describe("rule conditions (CEL)", () => {
  it("evaluates over the typed environment: transaction, caller, context, facts and in_cidr", () => {
    const cases: [string, boolean][] = [
      ['transaction.present && transaction.currency == "EUR" && transaction.amount > 1000.0', true],
      ["transaction.amount > 1000", true],
      ["transaction.amount <= 1200.5", true],
      ['caller == "payments" && !facts.payee_seen && facts.device_seen', true],
      ["facts.seconds_since_step_up > 60 && facts.seconds_since_step_up < 120", true],
      ['in_cidr(context.network, "10.0.0.0/8")', true],
      ['in_cidr(context.network, "192.168.0.0/16")', false],
      ['in_cidr(context.network, "not a range")', false],
      ['"network" in context && !("absent" in context)', true],
      ["has(context.device) && size(context.device) == 3", true],
      ['transaction.payee.startsWith("ACME") && transaction.resource == ""', true],
      ['caller in ["payments", "accounts"]', true],
    ];
    for (const [source, expected] of cases)
      assert.equal(compileCondition(source).evaluate(input()), expected, source);
  });

  it("sees an absent transaction as present == false with empty fields", () => {
    const c = compileCondition("transaction.present || transaction.amount > 0.0");
    const { transaction: _, ...none } = input();
    assert.equal(c.evaluate(none), false);
    assert.equal(c.readsTransaction, true);
  });

  it("is undecided (undefined), never throwing, when a context key it reads is absent", () => {
    const c = compileCondition('context.network == "10.1.2.3"');
    assert.equal(c.evaluate(input({ context: {} })), undefined);
  });

  it("records the facts a condition reads", () => {
    assert.deepEqual([...compileCondition("!facts.payee_seen || facts.network_seen").facts].sort(), [
      "network_seen",
      "payee_seen",
    ]);
    assert.equal(compileCondition('caller == "x"').facts.size, 0);
  });

  it("refuses at compile time what does not parse, type or fit, naming the problem", () => {
    const refusals: [string, RegExp][] = [
      ["transaction.amount >", /does not parse/],
      ["transaction.amout > 1.0", /unknown field transaction\.amout/],
      ["facts.payee > 1", /unknown field facts\.payee/],
      ["user == 1", /unknown variable "user"/],
      ["transaction.amount + 1.0", /is a double, not a bool/],
      ["caller == 1", /compares string with int/],
      ["transaction.amount + 1 > 2.0", /applied to double and int/],
      ["[1, 2].exists(x, x > 1)", /comprehensions/],
      ['context.network.matches("^10")', /unknown function or overload "matches"/],
      ['{"a": 1}.size() > 0', /literals are not allowed/],
      [`caller == "${"x".repeat(1100)}"`, /longer than 1024 bytes/],
      [Array.from({ length: 120 }, () => "true").join(" && "), /more than 200 terms/],
      ["in_cidr(context.network)", /in_cidr takes/],
    ];
    for (const [source, message] of refusals) {
      assert.throws(
        () => compileCondition(source),
        (e: unknown) => e instanceof ConditionError && message.test(e.message),
        source,
      );
    }
  });
});
