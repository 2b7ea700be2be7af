import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { StepgateError } from "../domain/stepgate-error.ts";
import { assertCallerMay, type CallerNeed } from "./caller-scopes.ts";
import type { CallerScope } from "./policy.ts";

const policy = {
  callerScopes: new Map<string, CallerScope>([
    ["payments", { actions: new Set(["payments.transfer"]), factors: "none", subjectProof: "optional" }],
    ["accounts", { actions: new Set(["*"]), factors: "manage", subjectProof: "optional" }],
    ["support", { actions: new Set(), factors: "read", subjectProof: "optional" }],
  ]),
};

const allowed = (caller: string, need: CallerNeed, p: Parameters<typeof assertCallerMay>[0] = policy) => {
  try {
    assertCallerMay(p, caller, need);
    return true;
  } catch (error) {
    assert.ok(error instanceof StepgateError && error.reason === "CALLER_NOT_ALLOWED", String(error));
    return false;
  }
};

describe("caller scopes", () => {
  it("lets a caller use only the actions in its scope; * is every action", () => {
    assert.equal(allowed("payments", { action: "payments.transfer" }), true);
    assert.equal(allowed("payments", { action: "account.change_email" }), false);
    assert.equal(allowed("accounts", { action: "account.change_email" }), true);
    assert.equal(allowed("support", { action: "payments.transfer" }), false);
  });

  it("ends sessions only for callers that step up for some action", () => {
    assert.equal(allowed("payments", { anyAction: true }), true);
    assert.equal(allowed("support", { anyAction: true }), false);
  });

  it("reads factors with read or manage, changes them only with manage", () => {
    assert.equal(allowed("support", { factors: "read" }), true);
    assert.equal(allowed("support", { factors: "manage" }), false);
    assert.equal(allowed("accounts", { factors: "manage" }), true);
    assert.equal(allowed("payments", { factors: "read" }), false);
  });

  it("refuses a caller the policy does not list, and allows everything without scopes", () => {
    assert.equal(allowed("stranger", { action: "payments.transfer" }), false);
    assert.equal(allowed("stranger", { factors: "manage" }, { callerScopes: undefined }), true);
  });
});
