import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Priority } from "../domain/priority.ts";
import { callPriority } from "./call-priority.ts";
import { sourceAddress } from "./traffic-shaping.ts";

const actions: Record<string, Priority> = { "payments.transfer": "critical", "reports.view": "low" };
const of = (method: string, request: unknown) => callPriority(method, request, (a) => actions[a]);

describe("call priority", () => {
  it("takes StepUp's, Verify's and CheckGrant's from the action, Verify marked as such", () => {
    assert.deepEqual(of("StepUpService/StepUp", { action: "payments.transfer" }), {
      priority: "critical",
      isVerify: false,
    });
    assert.deepEqual(of("StepUpService/Verify", { action: "payments.transfer" }), {
      priority: "critical",
      isVerify: true,
    });
    assert.deepEqual(of("StepUpService/CheckGrant", { action: "reports.view" }), {
      priority: "low",
      isVerify: false,
    });
  });

  it("ranks an unknown or missing action low", () => {
    assert.equal(of("StepUpService/StepUp", { action: "nope" }).priority, "low");
    assert.equal(of("StepUpService/Verify", {}).priority, "low");
  });

  it("ranks calls without an action by kind", () => {
    assert.equal(of("StepUpService/EndSession", {}).priority, "high");
    assert.equal(of("StepUpService/GetJwks", {}).priority, "high");
    assert.equal(of("FactorService/RemoveFactor", {}).priority, "normal");
    assert.equal(of("FactorService/ListFactors", {}).priority, "low");
  });

  it("reads the client's address without its port", () => {
    assert.equal(sourceAddress("127.0.0.1:50123"), "127.0.0.1");
    assert.equal(sourceAddress("[::1]:50123"), "::1");
    assert.equal(sourceAddress("[2001:db8::1]:443"), "2001:db8::1");
    assert.equal(sourceAddress(undefined), "unknown");
    assert.equal(sourceAddress("/tmp/socket"), "/tmp/socket");
  });
});
