import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The action every rules scenario steps up for, as the example policy defines it (aal2, 300 s). */
export const ruledAction = "payments.transfer";

/** One of an action's rules, as a policy file writes it. */
interface RuleDoc {
  name: string;
  when: string;
  [field: string]: unknown;
}

// Four rules on what the request carries: the transaction, the caller, the context's network and device.
const requestRules: RuleDoc[] = [
  {
    name: "large_amount",
    when: 'transaction.present && transaction.currency == "EUR" && transaction.amount > 1000.0',
    methods: ["passkey"],
  },
  { name: "batch_caller", when: 'caller == "payments-batch"', max_age: 0 },
  {
    name: "outside_corporate_network",
    when: '"network" in context && !in_cidr(context.network, "10.0.0.0/8")',
    max_age: 60,
  },
  { name: "shared_device", when: '"device" in context && context.device.startsWith("shared-")', max_age: 0 },
];
const foreignCurrency: RuleDoc = {
  name: "foreign_currency",
  when: 'transaction.present && !(transaction.currency in ["EUR", "CHF"])',
  max_age: 60,
};
// The one that reads facts: a StepUp from a device this subject never stepped up from.
const newDevice: RuleDoc = {
  name: "new_device",
  when: '"device" in context && !facts.device_seen',
  max_age: 0,
};

/** The policies the rules bench compares, by scenario: the same action with no rules, five without facts, five with one reading facts. */
export const rulePolicies = {
  "no rules": [],
  "5 rules": [...requestRules, foreignCurrency],
  "5 rules, 1 reads facts": [...requestRules, newDevice],
} satisfies Record<string, RuleDoc[]>;
export type RuleScenario = keyof typeof rulePolicies;

/**
 * What every measured StepUp sends: a 120 EUR transfer from the corporate network on a managed
 * device, by the `payments` caller. None of the rules above holds for it, so each is evaluated in
 * full; `new_device` does not hold once the device was seen (the preparing Verify records it).
 */
export const ruledRequest = {
  caller: "payments",
  transaction: { amount: "120.00", currency: "EUR", payee: "ACME Ltd", resource: "DE-001" },
  context: { network: "10.20.30.40", device: "laptop-4f2a" },
};

/**
 * A policy document (JSON, which YAML reads) whose `payments.transfer` has `rules` and otherwise
 * the example policy's fields, the four management actions, and rate limits out of reach (every
 * call still counts them, as in `pnpm bench`).
 */
export function rulePolicyText(rules: readonly RuleDoc[]): string {
  const managed = { acr: "aal2", max_age: 300 };
  return JSON.stringify({
    levels: ["aal1", "aal2", "aal3"],
    methods: {
      totp: { acr: "aal2", amr: ["otp"] },
      recovery_code: { acr: "aal2", amr: ["otp"] },
      passkey: { acr: "aal2", device_bound_acr: "aal3" },
    },
    webauthn: { rp_id: "localhost", rp_name: "Stepgate bench", origins: ["http://localhost:8088"] },
    challenge: { ttl: 300, max_attempts: 5 },
    lockout: { max_failures: 10, duration: 900 },
    grant_ttl: 300,
    actions: {
      [ruledAction]: {
        acr: "aal2",
        max_age: 300,
        methods: ["passkey", "totp"],
        priority: "critical",
        passkey: { user_verification: "required" },
        rules,
      },
      "stepgate.enroll_totp": managed,
      "stepgate.create_recovery_codes": managed,
      "stepgate.remove_factor": managed,
    },
    rate_limits: {
      subject: { calls: 10_000_000, per: 60 },
      source: { calls: 10_000_000, per: 1 },
      caller: { calls: 10_000_000, per: 1 },
    },
  });
}

/** `rulePolicyText(rules)` in a new temporary file; returns its path. */
export function writeRulePolicy(rules: readonly RuleDoc[]): string {
  const file = join(mkdtempSync(join(tmpdir(), "stepgate-rules-")), "policy.yaml");
  writeFileSync(file, rulePolicyText(rules));
  return file;
}
