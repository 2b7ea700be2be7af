import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { ChallengeSchema, EnrollmentRequiredSchema, Method, StepUpRequiredSchema } from "@stepgate/api";
import { stepUpRequiredError, stepUpRequiredOf, wwwAuthenticateTrailer } from "./step-up-required.ts";

const challenge = create(ChallengeSchema, {
  challengeId: "c-1",
  methods: [Method.TOTP],
  requiredAcr: "aal2",
  maxAge: 300,
});

describe("the STEP_UP_REQUIRED error", () => {
  it("carries RFC 9470's parameters in the detail, the ErrorInfo and the www-authenticate trailer", () => {
    const error = stepUpRequiredError({
      action: "payments.transfer",
      grantRefusal: "GRANT_EXPIRED",
      acr: "aal2",
      maxAge: 300,
      next: { case: "challenge", value: challenge },
    });
    assert.equal(error.code, Code.Unauthenticated);
    assert.equal(
      error.metadata.get(wwwAuthenticateTrailer),
      'Bearer error="insufficient_user_authentication", error_description="A stronger or fresher authentication is required", acr_values="aal2", max_age=300',
    );
    const need = stepUpRequiredOf(error);
    assert.equal(need?.grantRefusal, "GRANT_EXPIRED");
    assert.equal(need?.next.case, "challenge");
    assert.equal(need?.next.value.challengeId, "c-1");
  });

  it("says enrol first, with no challenge id, when the user has no factor that reaches the level", () => {
    const error = stepUpRequiredError({
      action: "payments.high_value",
      grantRefusal: "GRANT_MISSING",
      acr: "aal3",
      maxAge: 0,
      next: { case: "enrollmentRequired", value: create(EnrollmentRequiredSchema, { requiredAcr: "aal3" }) },
    });
    assert.match(error.rawMessage, /enrol a second factor first/);
    assert.match(error.metadata.get(wwwAuthenticateTrailer) ?? "", /acr_values="aal3", max_age=0$/);
    assert.equal(stepUpRequiredOf(error)?.next.case, "enrollmentRequired");
  });

  it("is read from nothing else: other codes, other errors, plain values", () => {
    const detail = { desc: StepUpRequiredSchema, value: create(StepUpRequiredSchema, { action: "a" }) };
    assert.equal(
      stepUpRequiredOf(new ConnectError("no", Code.PermissionDenied, undefined, [detail])),
      undefined,
    );
    assert.equal(stepUpRequiredOf(new ConnectError("no", Code.Unauthenticated)), undefined);
    assert.equal(stepUpRequiredOf(new Error("no")), undefined);
    assert.equal(stepUpRequiredOf(undefined), undefined);
  });
});
