import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { StepUpService } from "@stepgate/api";
import type { MethodName } from "../domain/method.ts";
import type { CheckGrant } from "../grants/check-grant.ts";
import type { GetJwks } from "../grants/get-jwks.ts";
import type { ProveSubject } from "../identity/prove-subject.ts";
import { failureOutcome, measure } from "../observability/measure.ts";
import type { Metrics } from "../observability/metrics.ts";
import type { CallerNeed } from "../policy/caller-scopes.ts";
import type { EndSession } from "../stepup/end-session.ts";
import type { StepUp } from "../stepup/step-up.ts";
import type { Verify } from "../stepup/verify.ts";
import { callerOf, subjectTokenOf } from "./caller.ts";
import { grantToProto, methodToProto, secondsToTimestamp, transactionOf } from "./convert.ts";

/** The use cases StepUpService serves, and what its metrics need. */
export interface StepUpUseCases {
  stepUp: StepUp;
  verify: Verify;
  checkGrant: CheckGrant;
  endSession: EndSession;
  getJwks: GetJwks;
  metrics: Metrics;
  /** True for actions the policy names: metric attributes must come from a bounded set. */
  isKnownAction: (action: string) => boolean;
  /** Checks the calling service's scope; fails with CALLER_NOT_ALLOWED (policy/caller-scopes.ts). */
  mayCall: (caller: string, need: CallerNeed) => void;
  /** Checks the subject token the caller sent or the policy requires (identity/prove-subject.ts). */
  proveSubject: ProveSubject;
}

/** The method each kind of proof answers with. */
const proofMethods: Record<"totpCode" | "recoveryCode" | "passkeyAssertionJson", MethodName> = {
  totpCode: "totp",
  recoveryCode: "recovery_code",
  passkeyAssertionJson: "passkey",
};

/** StepUpService: translates protobuf to use case calls and back; errors are mapped by the guard. */
export function stepUpHandlers(u: StepUpUseCases): ServiceImpl<typeof StepUpService> {
  return {
    async stepUp(req, ctx) {
      const caller = callerOf(ctx);
      u.mayCall(caller, { action: req.action });
      const { subject, sessionId } = req;
      await u.proveSubject({ caller, subject, sessionId, token: subjectTokenOf(ctx) });
      const action = u.isKnownAction(req.action) ? req.action : "unknown";
      const outcome = await measure(
        u.metrics.stepUpDuration,
        { "stepgate.action": action },
        () =>
          u.stepUp({
            subject: req.subject,
            sessionId: req.sessionId,
            action: req.action,
            caller,
            context: req.context,
            transaction: transactionOf(req.transaction),
          }),
        (o) => o.kind,
      );
      const rule = outcome.rule ?? "";
      switch (outcome.kind) {
        case "grant":
          return { rule, outcome: { case: "grant", value: grantToProto(outcome.grant) } };
        case "challenge": {
          const c = outcome.challenge;
          return {
            rule,
            outcome: {
              case: "challenge",
              value: {
                challengeId: c.id,
                methods: c.methods.map(methodToProto),
                requiredAcr: c.acr,
                expiresAt: timestampFromMs(c.expiresAt),
                attemptsRemaining: outcome.attemptsRemaining,
                passkeyRequestOptionsJson: outcome.passkeyOptionsJson ?? "",
                transactionSummary: c.transaction?.summary ?? "",
                maxAge: outcome.maxAge,
              },
            },
          };
        }
        case "enrollment_required":
          return {
            rule,
            outcome: {
              case: "enrollmentRequired",
              value: {
                requiredAcr: outcome.acr,
                methods: outcome.methods.map(methodToProto),
                maxAge: outcome.maxAge,
              },
            },
          };
      }
    },

    async verify(req, ctx) {
      const caller = callerOf(ctx);
      // The request's rules (validateRequests) made sure the proof holds one kind of answer.
      const proof = req.proof?.kind;
      const method: MethodName = proofMethods[proof?.case ?? "totpCode"];
      const code = proof?.value ?? "";
      u.mayCall(caller, { action: req.action });
      const outcome = await measure(
        u.metrics.verifyDuration,
        { "stepgate.method": method },
        () =>
          u.verify({
            challengeId: req.challengeId,
            subject: req.subject,
            sessionId: req.sessionId,
            action: req.action,
            caller,
            method,
            code,
            idempotencyKey: req.idempotencyKey,
            transaction: transactionOf(req.transaction),
          }),
        () => "success",
      ).then(
        (o) => {
          u.metrics.verification({ "stepgate.method": method, "stepgate.result": "success" });
          return o;
        },
        (error: unknown) => {
          u.metrics.verification({ "stepgate.method": method, "stepgate.result": failureOutcome(error) });
          throw error;
        },
      );
      return {
        grant: grantToProto(outcome.grant),
        method: methodToProto(outcome.method),
        recoveryCodesRemaining: outcome.recoveryCodesRemaining,
      };
    },

    async checkGrant(req, ctx) {
      const caller = callerOf(ctx);
      u.mayCall(caller, { action: req.action });
      const claims = await u.checkGrant(req.token, {
        audience: caller,
        action: req.action,
        idempotencyKey: req.idempotencyKey,
        transaction: transactionOf(req.transaction),
      });
      return {
        subject: claims.sub,
        sessionId: claims.sid,
        action: claims.action,
        acr: claims.acr,
        amr: claims.amr,
        authTime: secondsToTimestamp(claims.auth_time),
        expiresAt: secondsToTimestamp(claims.exp),
        grantId: claims.jti,
      };
    },

    async endSession(req, ctx) {
      const caller = callerOf(ctx);
      u.mayCall(caller, { anyAction: true });
      const { subject, sessionId } = req;
      await u.proveSubject({ caller, subject, sessionId, token: subjectTokenOf(ctx) });
      await u.endSession({ subject: req.subject, sessionId: req.sessionId, caller });
      return {};
    },

    async getJwks() {
      const keys = u.getJwks();
      return { jwksJson: JSON.stringify({ keys }), keys };
    },
  };
}
