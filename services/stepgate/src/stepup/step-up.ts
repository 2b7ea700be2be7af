import type { ActionPolicy, MethodName } from "../config/policy.ts";
import { toSeconds } from "../domain/clock.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import type { IssuedGrant } from "../grants/grant-issuer.ts";
import { issue } from "../grants/issue.ts";
import { inSpan } from "../observability/tracing.ts";
import { methodsFor } from "../policy/assurance.ts";
import type { Stepgate } from "../stepgate.ts";
import type { Challenge } from "./challenges.ts";

export interface StepUpInput {
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
  context: Record<string, string>;
}

export type StepUpOutcome =
  | { kind: "grant"; grant: IssuedGrant }
  | { kind: "challenge"; challenge: Challenge; attemptsRemaining: number }
  | { kind: "enrollment_required"; acr: string; methods: MethodName[] };

/** Decides whether the session may act now, must answer a challenge, or must enrol first. */
export async function stepUp(sg: Stepgate, input: StepUpInput): Promise<StepUpOutcome> {
  const action = sg.policy.actions.get(input.action);
  assertThat(action, "UNKNOWN_ACTION", "no policy for this action");
  const attributes = {
    "stepgate.action": action.name,
    "stepgate.acr.required": action.acr,
    "stepgate.replica": sg.config.replicaId,
  };
  return inSpan("stepgate.policy.evaluate", attributes, async (span) => {
    const outcome = await decide(sg, input, action);
    span.setAttribute("stepgate.outcome", outcome.kind);
    return outcome;
  });
}

async function decide(sg: Stepgate, input: StepUpInput, action: ActionPolicy): Promise<StepUpOutcome> {
  const now = sg.clock();
  const allowed = methodsFor(sg.policy, action);
  if (action.maxAge > 0) {
    const elevations = await sg.elevations.find(input.subject, input.sessionId, action.acr);
    const fresh = elevations.find(
      (e) => toSeconds(now) - e.authTime <= action.maxAge && allowed.includes(e.method as MethodName),
    );
    if (fresh) {
      const grant = issue(sg, { ...input, action, elevation: fresh });
      sg.audit.record({
        type: "grant.issued",
        subject: input.subject,
        caller: input.caller,
        details: grantAudit(grant),
      });
      return { kind: "grant", grant };
    }
  }
  const enrolled = await sg.factors.enrolled(input.subject);
  const methods = allowed.filter((m) => enrolled.methods.has(m));
  if (methods.length === 0) return { kind: "enrollment_required", acr: action.acr, methods: allowed };
  const challenge = await sg.challenges.create({
    subject: input.subject,
    sessionId: input.sessionId,
    action: action.name,
    caller: input.caller,
    acr: action.acr,
    methods,
    expiresAt: now + sg.policy.challengeTtl * 1000,
    ...(methods.includes("totp") ? { totp: enrolled.totp } : {}),
  });
  sg.audit.record({
    type: "challenge.created",
    subject: input.subject,
    caller: input.caller,
    details: { action: action.name, methods, context: input.context },
  });
  return { kind: "challenge", challenge, attemptsRemaining: sg.policy.challengeMaxAttempts };
}

export function grantAudit(grant: IssuedGrant): Record<string, unknown> {
  const { action, acr, amr, jti, exp } = grant.claims;
  return { action, acr, amr, grant_id: jti, exp };
}
