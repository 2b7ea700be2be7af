import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { FactorService } from "@stepgate/api";
import { confirmTotp, createRecoveryCodes, enrollTotp, removeFactor } from "../factors/factor-management.ts";
import type { Stepgate } from "../stepgate.ts";
import { callerOf } from "./caller.ts";
import { factorToProto } from "./convert.ts";
import { fields, uuidPattern } from "./validate.ts";

export interface FactorHandlerOptions {
  /** The issuer name authenticator apps show next to the account. */
  totpIssuer: string;
}

/** FactorService: enrolment and management of second factors. */
export function factorHandlers(
  sg: Stepgate,
  options: FactorHandlerOptions,
): ServiceImpl<typeof FactorService> {
  return {
    async enrollTotp(req, ctx) {
      const caller = callerOf(ctx);
      fields()
        .text("subject", req.subject)
        .text("label", req.label, 64)
        .text("account_name", req.accountName, 128)
        .optionalText("grant", req.grant, 4096)
        .done();
      const enrolled = await enrollTotp(sg, { ...req, caller, issuerName: options.totpIssuer });
      return {
        factorId: enrolled.factorId,
        otpauthUri: enrolled.uri,
        secret: enrolled.secret,
        confirmBy: timestampFromMs(enrolled.confirmBy.getTime()),
      };
    },

    async confirmTotp(req, ctx) {
      const caller = callerOf(ctx);
      fields()
        .text("subject", req.subject)
        .pattern("factor_id", req.factorId, uuidPattern, "is not a factor id")
        .pattern("code", req.code, /^\d{6}$/, "must be six digits")
        .done();
      const factor = await confirmTotp(sg, req.subject, req.factorId, req.code, caller);
      return { factor: factorToProto(factor) };
    },

    async createRecoveryCodes(req, ctx) {
      const caller = callerOf(ctx);
      fields().text("subject", req.subject).optionalText("grant", req.grant, 4096).done();
      return createRecoveryCodes(sg, req.subject, req.grant, caller);
    },

    async listFactors(req, ctx) {
      callerOf(ctx);
      fields().text("subject", req.subject).done();
      return { factors: (await sg.factors.list(req.subject)).map(factorToProto) };
    },

    async removeFactor(req, ctx) {
      const caller = callerOf(ctx);
      fields()
        .text("subject", req.subject)
        .pattern("factor_id", req.factorId, uuidPattern, "is not a factor id")
        .optionalText("grant", req.grant, 4096)
        .done();
      await removeFactor(sg, req.subject, req.factorId, req.grant, caller);
      return {};
    },
  };
}
