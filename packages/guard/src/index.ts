export { grantHeader, stepUpRequiredReason } from "@stepgate/api";
export type { Admission, GuardStepgate } from "./admit-call.ts";
export { admitCall } from "./admit-call.ts";
export type { AdmittedGrant, GrantCheck } from "./check-grant.ts";
export { checkGrant } from "./check-grant.ts";
export type { Guard, GuardDecision, GuardOptions } from "./create-guard.ts";
export { admittedGrantOf, createGuard } from "./create-guard.ts";
export type { CallSession, MethodRule, ProtectedMethod, TransactionInput } from "./method-rule.ts";
export { methodPath, protect } from "./method-rule.ts";
export type { StepUpNeed } from "./step-up-required.ts";
export {
  insufficientUserAuthentication,
  stepUpRequiredError,
  stepUpRequiredOf,
  wwwAuthenticateTrailer,
} from "./step-up-required.ts";
