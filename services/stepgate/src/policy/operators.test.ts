import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../config/config-error.ts";
import { StepgateError } from "../domain/stepgate-error.ts";
import { assertOperatorMay } from "./operators.ts";
import { parsePolicy } from "./policy.ts";

const base = `
levels: [aal1, aal2]
methods: { totp: { acr: aal2, amr: [otp] } }
challenge: { ttl: 60, max_attempts: 5 }
lockout: { max_failures: 8, duration: 60 }
grant_ttl: 120
actions:
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`;

const refusal = (run: () => void) => {
  try {
    run();
    return undefined;
  } catch (error) {
    assert.ok(error instanceof StepgateError, String(error));
    return `${error.reason} ${error.metadata.scope}`;
  }
};

describe("operators in the policy", () => {
  it("allows nobody without an operators section, whatever callers there are", () => {
    const policy = parsePolicy(base);
    assert.equal(policy.operators.scopes.size, 0);
    assert.equal(
      refusal(() => assertOperatorMay(policy.operators, "alice", "status")),
      "OPERATOR_NOT_ALLOWED status",
    );
  });

  it("gives each operator its scopes, * being every scope, and maps its peers", () => {
    const policy = parsePolicy(`${base}
operators:
  alice: { peers: ["spiffe://example.org/ops/alice"], scopes: ["*"] }
  bob: { peers: [bob.ops.internal], scopes: [status, audit.read] }
`);
    assert.equal(
      refusal(() => assertOperatorMay(policy.operators, "alice", "reseal")),
      undefined,
    );
    assert.equal(
      refusal(() => assertOperatorMay(policy.operators, "bob", "audit.read")),
      undefined,
    );
    assert.equal(
      refusal(() => assertOperatorMay(policy.operators, "bob", "factors.manage")),
      "OPERATOR_NOT_ALLOWED factors.manage",
    );
    assert.equal(policy.operators.peers.get("bob.ops.internal"), "bob");
  });

  it("fails to load when a peer names a caller and an operator, or two operators", () => {
    const both = `${base}
callers:
  payments: { peers: [payments.internal], actions: ["*"] }
operators:
  alice: { peers: [payments.internal], scopes: [status] }
`;
    assert.throws(
      () => parsePolicy(both),
      (e: unknown) =>
        e instanceof ConfigError &&
        /operators\.alice\.peers: payments\.internal already names the caller payments/.test(e.message),
    );
    const twice = `${base}
operators:
  alice: { peers: [ops.internal], scopes: [status] }
  bob: { peers: [ops.internal], scopes: [status] }
`;
    assert.throws(
      () => parsePolicy(twice),
      /operators\.bob\.peers: ops\.internal already names the operator alice/,
    );
  });

  it("refuses unknown scopes and an operator without scopes", () => {
    assert.throws(() => parsePolicy(`${base}\noperators:\n  alice: { scopes: [root] }\n`), ConfigError);
    assert.throws(() => parsePolicy(`${base}\noperators:\n  alice: { scopes: [] }\n`), ConfigError);
  });
});
