import type { MessageInitShape } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { FactorSchema } from "@stepgate/api";
import { FactorStatus, type GrantSchema, Method, type TransactionDetails } from "@stepgate/api";
import type { Factor } from "../domain/factor.ts";
import type { MethodName } from "../domain/method.ts";
import type { IssuedGrant } from "../grants/grant-issuer.ts";

const methodNumbers: Record<MethodName, Method> = {
  totp: Method.TOTP,
  recovery_code: Method.RECOVERY_CODE,
  passkey: Method.PASSKEY,
};

export const methodToProto = (m: MethodName): Method => methodNumbers[m];

export const secondsToTimestamp = (s: number) => timestampFromMs(s * 1000);

export function grantToProto({ token, claims }: IssuedGrant): MessageInitShape<typeof GrantSchema> {
  return {
    token,
    expiresAt: secondsToTimestamp(claims.exp),
    acr: claims.acr,
    amr: claims.amr,
    authTime: secondsToTimestamp(claims.auth_time),
    grantId: claims.jti,
    singleUse: claims.single_use === true,
  };
}

export function factorToProto(f: Factor): MessageInitShape<typeof FactorSchema> {
  return {
    factorId: f.id,
    method: methodToProto(f.method),
    status: f.status === "active" ? FactorStatus.ACTIVE : FactorStatus.PENDING,
    label: f.label,
    createdAt: timestampFromMs(f.createdAt.getTime()),
    ...(f.lastUsedAt ? { lastUsedAt: timestampFromMs(f.lastUsedAt.getTime()) } : {}),
    recoveryCodesRemaining: f.recoveryCodesRemaining,
    flagged: f.flagged === true,
  };
}

/** A request's transaction as plain details for the use cases (normalised there); undefined when not sent. */
export function transactionOf(details: TransactionDetails | undefined) {
  if (details === undefined) return undefined;
  const { amount, currency, payee, resource } = details;
  return { amount, currency, payee, ...(resource === "" ? {} : { resource }) };
}
