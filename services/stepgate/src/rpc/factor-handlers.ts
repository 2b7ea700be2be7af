import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import type { FactorService } from "@stepgate/api";
import type { BeginPasskeyEnrollment } from "../factors/begin-passkey-enrollment.ts";
import type { ConfirmTotp } from "../factors/confirm-totp.ts";
import type { CreateRecoveryCodes } from "../factors/create-recovery-codes.ts";
import type { EnrollTotp } from "../factors/enroll-totp.ts";
import type { FinishPasskeyEnrollment } from "../factors/finish-passkey-enrollment.ts";
import type { ListFactors } from "../factors/list-factors.ts";
import type { RemoveFactor } from "../factors/remove-factor.ts";
import type { ProveSubject } from "../identity/prove-subject.ts";
import type { CallerNeed } from "../policy/caller-scopes.ts";
import { callerOf, subjectTokenOf } from "./caller.ts";
import { factorToProto } from "./convert.ts";

/** The use cases FactorService serves. */
export interface FactorUseCases {
  enrollTotp: EnrollTotp;
  confirmTotp: ConfirmTotp;
  beginPasskeyEnrollment: BeginPasskeyEnrollment;
  finishPasskeyEnrollment: FinishPasskeyEnrollment;
  createRecoveryCodes: CreateRecoveryCodes;
  listFactors: ListFactors;
  removeFactor: RemoveFactor;
  /** Checks the calling service's scope; fails with CALLER_NOT_ALLOWED (policy/caller-scopes.ts). */
  mayCall: (caller: string, need: CallerNeed) => void;
  /** Checks the subject token the caller sent or the policy requires (identity/prove-subject.ts). */
  proveSubject: ProveSubject;
}

/** FactorService: calls the factor use cases and translates their results (requests are validated before, validateRequests). */
export function factorHandlers(useCases: FactorUseCases): ServiceImpl<typeof FactorService> {
  return {
    async enrollTotp(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      const enrolled = await useCases.enrollTotp({ ...req, caller, proof });
      return {
        factorId: enrolled.factorId,
        otpauthUri: enrolled.uri,
        secret: enrolled.secret,
        confirmBy: timestampFromMs(enrolled.confirmBy.getTime()),
      };
    },

    async confirmTotp(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      const factor = await useCases.confirmTotp({ ...req, caller, proof });
      return { factor: factorToProto(factor) };
    },

    async beginPasskeyEnrollment(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      const begun = await useCases.beginPasskeyEnrollment({ ...req, caller, proof });
      return {
        factorId: begun.factorId,
        creationOptionsJson: begun.creationOptionsJson,
        confirmBy: timestampFromMs(begun.confirmBy.getTime()),
      };
    },

    async finishPasskeyEnrollment(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      const factor = await useCases.finishPasskeyEnrollment({ ...req, caller, proof });
      return { factor: factorToProto(factor) };
    },

    async createRecoveryCodes(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      return useCases.createRecoveryCodes({ ...req, caller, proof });
    },

    async listFactors(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "read" });
      await proven(useCases, caller, req.subject, ctx);
      return { factors: (await useCases.listFactors(req.subject)).map(factorToProto) };
    },

    async removeFactor(req, ctx) {
      const caller = callerOf(ctx);
      useCases.mayCall(caller, { factors: "manage" });
      const proof = await proven(useCases, caller, req.subject, ctx);
      await useCases.removeFactor({ ...req, caller, proof });
      return {};
    },
  };
}

/** The subject token checked against the call's subject (after validation and scope: cheap refusals first). */
const proven = (useCases: FactorUseCases, caller: string, subject: string, ctx: HandlerContext) =>
  useCases.proveSubject({ caller, subject, token: subjectTokenOf(ctx) });
