import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  type Challenge,
  type EnrollmentRequired,
  errorDomain,
  type StepUpRequired,
  StepUpRequiredSchema,
  stepUpRequiredReason,
} from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";

/** The RFC 9470 §3 error code of a call that needs a stronger or fresher authentication. */
export const insufficientUserAuthentication = "insufficient_user_authentication";

/** The response trailer that carries the RFC 9470 challenge as a WWW-Authenticate value. */
export const wwwAuthenticateTrailer = "www-authenticate";

/** Why a call needs a step-up, and what Stepgate answered the guard's StepUp, if it could. */
export interface StepUpNeed {
  action: string;
  /** GRANT_MISSING, or the grant's refusal (GrantError or CheckGrant reason). */
  grantRefusal: string;
  acr: string;
  /** RFC 9470 max_age in seconds. */
  maxAge: number;
  /** The policy rule that set the requirement; "" for the action's own fields. */
  rule?: string;
  next?: { case: "challenge"; value: Challenge } | { case: "enrollmentRequired"; value: EnrollmentRequired };
}

// RFC 9470 §3 parameters as an RFC 9110 auth-param list; values are policy names, quoted anyway.
function wwwAuthenticate(need: StepUpNeed): string {
  return [
    `Bearer error="${insufficientUserAuthentication}"`,
    'error_description="A stronger or fresher authentication is required"',
    `acr_values="${need.acr}"`,
    `max_age=${need.maxAge}`,
  ].join(", ");
}

/**
 * The one error a protected call is refused with for want of a step-up: UNAUTHENTICATED (RFC
 * 9470's 401), an ErrorInfo with reason STEP_UP_REQUIRED and RFC 9470's parameters as metadata
 * (`error`, `acr_values`, `max_age`, plus `action`, `grant_refusal`, `challenge_id`), the
 * StepUpRequired detail with the challenge, and a `www-authenticate` trailer. Quotes no grant.
 */
export function stepUpRequiredError(need: StepUpNeed): ConnectError {
  const detail = create(StepUpRequiredSchema, {
    error: insufficientUserAuthentication,
    action: need.action,
    acrValues: [need.acr],
    maxAge: need.maxAge,
    grantRefusal: need.grantRefusal,
    rule: need.rule ?? "",
    ...(need.next ? { next: need.next } : {}),
  });
  const challengeId = need.next?.case === "challenge" ? need.next.value.challengeId : "";
  const metadata: Record<string, string> = {
    error: insufficientUserAuthentication,
    action: need.action,
    acr_values: need.acr,
    max_age: String(need.maxAge),
    grant_refusal: need.grantRefusal,
    ...(challengeId ? { challenge_id: challengeId } : {}),
    ...(need.rule ? { rule: need.rule } : {}),
  };
  return new ConnectError(
    need.next?.case === "enrollmentRequired"
      ? `step-up required for ${need.action}: enrol a second factor first`
      : `step-up required for ${need.action}`,
    Code.Unauthenticated,
    { [wwwAuthenticateTrailer]: wwwAuthenticate(need) },
    [
      { desc: ErrorInfoSchema, value: { reason: stepUpRequiredReason, domain: errorDomain, metadata } },
      { desc: StepUpRequiredSchema, value: detail },
    ],
  );
}

/**
 * The StepUpRequired detail of an error a protected service answered with, for its client (a
 * front end's server): undefined for any other error. Works with Connect's transports and with
 * @stepgate/grpc-bridge's grpc-js transport (which decodes `grpc-status-details-bin`).
 */
export function stepUpRequiredOf(error: unknown): StepUpRequired | undefined {
  if (!(error instanceof ConnectError) || error.code !== Code.Unauthenticated) return undefined;
  return error.findDetails(StepUpRequiredSchema)[0];
}
