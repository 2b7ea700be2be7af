import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { ConfigError } from "../config/config-error.ts";
import type { ConditionFacts } from "./condition.ts";
import { parsePolicy } from "./policy.ts";
import { atLeastAsStrict, chooseRequirement, requirementOf } from "./requirement.ts";

const policyWith = (rules: string, more = "") => `
levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  passkey: { acr: aal2, device_bound_acr: aal3 }
challenge: { ttl: 60, max_attempts: 5 }
lockout: { max_failures: 8, duration: 60 }
grant_ttl: 120
actions:
  payments.transfer:
    acr: aal2
    max_age: 300
    rules:
${rules}
${more}
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`;

const rules = `
      - { name: large, when: "transaction.amount > 1000.0", acr: aal3, methods: [passkey] }
      - { name: new_payee, when: "transaction.present && !facts.payee_seen", max_age: 0 }
      - { name: office, when: 'in_cidr(context.network, "10.0.0.0/8")', max_age: 3600 }`;
const policy = parsePolicy(policyWith(rules));
const action = policy.actions.get("payments.transfer") ?? assert.fail("no action");
const seen: ConditionFacts = {
  payeeSeen: true,
  deviceSeen: false,
  networkSeen: false,
  secondsSinceStepUp: 10,
};
const unseen: ConditionFacts = { ...seen, payeeSeen: false };
const transfer = (amount: string) => ({ amount, currency: "EUR", payee: "ACME" });

describe("choosing an action's requirement by its rules", () => {
  it("takes the first rule that holds, in order, and the action's fields otherwise", () => {
    const base = { caller: "payments", context: { network: "10.0.0.1" } };
    const pick = (amount: string | undefined, facts: ConditionFacts) =>
      chooseRequirement(
        policy,
        action,
        { ...base, ...(amount ? { transaction: transfer(amount) } : {}) },
        facts,
      );
    assert.equal(pick("5000", unseen).rule, "large");
    assert.equal(pick("5000", unseen).requirement.acr, "aal3");
    assert.deepEqual(pick("5000", unseen).requirement.methods, ["passkey"]);
    assert.equal(pick("50", unseen).rule, "new_payee");
    assert.equal(pick("50", unseen).requirement.maxAge, 0);
    assert.equal(pick("50", seen).rule, "office");
    assert.equal(pick("50", seen).requirement.maxAge, 3600);
    const none = chooseRequirement(
      policy,
      action,
      { caller: "payments", context: { network: "192.0.2.1" } },
      seen,
    );
    assert.deepEqual([none.rule, none.reason, none.requirement], [undefined, "default", action]);
  });

  it("with facts unreadable, applies a stricter rule that reads them and passes over a weaker one", () => {
    const down = chooseRequirement(
      policy,
      action,
      { caller: "p", context: {}, transaction: transfer("50") },
      undefined,
    );
    assert.deepEqual([down.rule, down.reason, down.undecided], ["new_payee", "assumed", ["new_payee"]]);
    const lenient = parsePolicy(
      policyWith(`      - { name: known, when: "facts.payee_seen", max_age: 3000 }`),
    );
    const a = lenient.actions.get("payments.transfer") ?? assert.fail("no action");
    const chosen = chooseRequirement(lenient, a, { caller: "p", context: {} }, undefined);
    assert.deepEqual([chosen.rule, chosen.reason, chosen.undecided], [undefined, "default", ["known"]]);
  });

  it("treats a failed evaluation (a context key absent) as undecided, the same way", () => {
    // office (max_age 3600) is weaker than the default 300: passed over when context.network is absent.
    const chosen = chooseRequirement(policy, action, { caller: "p", context: {} }, seen);
    assert.deepEqual([chosen.rule, chosen.undecided], [undefined, ["office"]]);
  });

  it("finds a challenge's requirement by its rule's name, and none for a rule that is gone", () => {
    assert.equal(requirementOf(policy, { action: "payments.transfer", rule: "large" })?.acr, "aal3");
    assert.equal(requirementOf(policy, { action: "payments.transfer" }), action);
    assert.equal(requirementOf(policy, { action: "payments.transfer", rule: "gone" }), undefined);
  });

  it("property: with only stricter rules, no context, transaction or facts (even unreadable) yields a weaker requirement, and nothing throws", () => {
    const strict = parsePolicy(
      policyWith(`
      - { name: a, when: 'transaction.amount > 100.0 && context.risk == "high"', acr: aal3, methods: [passkey] }
      - { name: b, when: '!facts.payee_seen || !facts.device_seen', max_age: 0 }
      - { name: c, when: 'in_cidr(context.ip, "10.0.0.0/8") == false && facts.seconds_since_step_up > 600', max_age: 60, grant_ttl: 30 }`),
    );
    const a = strict.actions.get("payments.transfer") ?? assert.fail("no action");
    const text = fc.string({ maxLength: 40 });
    const arbitraryFacts = fc.option(
      fc.record({
        payeeSeen: fc.boolean(),
        deviceSeen: fc.boolean(),
        networkSeen: fc.boolean(),
        secondsSinceStepUp: fc.integer({ min: -1, max: 10_000_000 }),
      }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(
        fc.option(
          fc.record({ amount: fc.stringMatching(/^\d{1,9}(\.\d{1,2})?$/), currency: text, payee: text }),
          { nil: undefined },
        ),
        fc.dictionary(fc.constantFrom("risk", "ip", "device", "network", "x"), text, { maxKeys: 5 }),
        arbitraryFacts,
        (transaction, context, facts) => {
          const chosen = chooseRequirement(
            strict,
            a,
            { caller: "payments", context, ...(transaction ? { transaction } : {}) },
            facts,
          );
          assert.ok(atLeastAsStrict(strict, chosen.requirement, a), JSON.stringify(chosen));
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe("rules in the policy file", () => {
  const refused = (rule: string, message: RegExp) =>
    assert.throws(
      () => parsePolicy(policyWith(rule), "policy.yaml"),
      (e: unknown) => e instanceof ConfigError && message.test(e.message),
    );

  it("refuses to load a rule whose condition does not compile, naming the action and the rule", () => {
    refused(
      `      - { name: typo, when: "transaction.amout > 1.0" }`,
      /actions\.payments\.transfer\.rules\[0\] \(typo\): when unknown field transaction\.amout/,
    );
    refused(
      `      - { name: number, when: "transaction.amount" }`,
      /\(number\): when is a double, not a bool/,
    );
    refused(`      - { name: broken, when: "(" }`, /\(broken\): when does not parse/);
  });

  it("refuses an unknown level or method in a rule, a name used twice, and unknown keys", () => {
    refused(`      - { name: x, when: "true", acr: aal9 }`, /rules\[0\]\.acr: unknown level "aal9"/);
    refused(
      `      - { name: x, when: "true", methods: [recovery_code] }`,
      /method "recovery_code" is not defined/,
    );
    refused(
      `      - { name: x, when: "true" }\n      - { name: x, when: "false" }`,
      /the name "x" is used twice/,
    );
    refused(`      - { name: x, when: "true", priority: critical }`, /priority/);
  });

  it("lets a rule inherit every field it does not set from its action", () => {
    const p = parsePolicy(policyWith(`      - { name: fresh, when: "true", max_age: 0 }`));
    const rule = p.actions.get("payments.transfer")?.rules[0];
    assert.deepEqual(
      [rule?.requirement.acr, rule?.requirement.maxAge, rule?.requirement.grantTtl, rule?.requirement.rule],
      ["aal2", 0, 60, "fresh"],
    );
    assert.equal(p.readsFacts, false);
  });
});
