import { Code, ConnectError } from "@connectrpc/connect";
import { grantHeader, subjectTokenHeader } from "@stepgate/api";
import type { StepgateClient } from "@stepgate/client";
import { type AdmittedGrant, checkGrant } from "./check-grant.ts";
import type { CallSession, MethodRule, TransactionInput } from "./method-rule.ts";
import { stepUpRequiredError, stepUpRequiredOf } from "./step-up-required.ts";

/** What `admitCall` needs of Stepgate: the typed client (StepUp, CheckGrant, offline checks). */
export type GuardStepgate = Pick<StepgateClient, "stepUp" | "verifyGrant">;

/** A call admitted: the grant it acts under, and how it was obtained. */
export interface Admission {
  grant: AdmittedGrant;
  action: string;
  /** True when the call's own grant would not do and StepUp issued one (the session was fresh enough). */
  fromStepUp: boolean;
  /** Why the call's own grant would not do, when `fromStepUp`. */
  grantRefusal?: string;
}

interface Ask {
  action: string;
  session: CallSession;
  transaction: TransactionInput | undefined;
}

// Stepgate refusals the end user can act on pass through with their details; the rest are the
// protected service's configuration (unknown action, caller not allowed) and stay internal.
const userFacing = new Set([Code.ResourceExhausted, Code.InvalidArgument, Code.FailedPrecondition]);
const transient = new Set([Code.Unavailable, Code.DeadlineExceeded, Code.Canceled]);

/**
 * Admits one call of a protected method: its `stepgate-grant` header is checked (`checkGrant`);
 * without a grant that will do, StepUp is asked for the session, and either issues a grant at
 * once (the session's elevation is fresh enough) or gives the challenge the STEP_UP_REQUIRED
 * error carries. Rejects with that error; UNAVAILABLE when Stepgate cannot be reached (nothing
 * unchecked is admitted); UNAUTHENTICATED when `rule.session` names no session; Stepgate's own
 * refusal for a locked subject, a rate limit, an ended session or invalid transaction details;
 * INTERNAL for the rest (the protected service's configuration), with Stepgate's error as cause.
 */
export async function admitCall(
  stepgate: GuardStepgate,
  rule: MethodRule<unknown>,
  request: unknown,
  headers: Headers,
): Promise<Admission> {
  const session = sessionOf(rule, request, headers);
  const ask: Ask = {
    action: typeof rule.action === "string" ? rule.action : rule.action(request),
    session,
    transaction: rule.transaction?.(request),
  };
  try {
    const token = headers.get(grantHeader);
    const own = token ? await checkGrant(stepgate, token, ask) : { refusal: "GRANT_MISSING" };
    if ("grant" in own) return { grant: own.grant, action: ask.action, fromStepUp: false };
    return await stepUp(stepgate, ask, own.refusal, rule.context?.(request, headers));
  } catch (error) {
    throw asGuardError(error);
  }
}

async function stepUp(
  stepgate: GuardStepgate,
  ask: Ask,
  grantRefusal: string,
  context: Record<string, string> | undefined,
): Promise<Admission> {
  const { session, action, transaction } = ask;
  const { outcome, rule } = await stepgate.stepUp.stepUp(
    {
      subject: session.subject,
      sessionId: session.sessionId,
      action,
      ...(context ? { context } : {}),
      ...(transaction ? { transaction } : {}),
    },
    session.subjectToken ? { headers: { [subjectTokenHeader]: session.subjectToken } } : {},
  );
  if (outcome.case === "grant") {
    const issued = await checkGrant(stepgate, outcome.value.token, ask);
    if ("grant" in issued) return { grant: issued.grant, action, fromStepUp: true, grantRefusal };
    throw new ConnectError("the grant Stepgate issued did not pass its check", Code.Internal);
  }
  if (outcome.case === undefined) throw new ConnectError("StepUp answered no outcome", Code.Internal);
  const { requiredAcr, maxAge } = outcome.value;
  throw stepUpRequiredError({ action, grantRefusal, acr: requiredAcr, maxAge, rule, next: outcome });
}

function sessionOf(rule: MethodRule<unknown>, request: unknown, headers: Headers): CallSession {
  try {
    const session = rule.session(request, headers);
    if (session.subject && session.sessionId) return session;
  } catch (error) {
    if (error instanceof ConnectError) throw error;
  }
  throw new ConnectError("the call names no signed-in user session", Code.Unauthenticated);
}

// What leaves the guard: its own errors and user-facing refusals as they are, the rest masked.
function asGuardError(error: unknown): ConnectError {
  if (error instanceof ConnectError) {
    if (stepUpRequiredOf(error) || userFacing.has(error.code)) return error;
    const [message, code] = transient.has(error.code)
      ? ["Stepgate is unavailable; retry", Code.Unavailable]
      : ["the step-up check failed", Code.Internal];
    return new ConnectError(message, code, undefined, undefined, error);
  }
  // No key set (Stepgate unreachable), or a stale revocation feed under "fail-closed".
  return new ConnectError(
    "the grant could not be checked; retry",
    Code.Unavailable,
    undefined,
    undefined,
    error,
  );
}
