import { ConnectError } from "@connectrpc/connect";
import type { StepgateClient } from "@stepgate/client";
import { stepgateReasons } from "@stepgate/client";
import { GrantError } from "@stepgate/grant";
import type { CallSession, TransactionInput } from "./method-rule.ts";

/** A grant a protected call was admitted with. Times are seconds since the epoch. */
export interface AdmittedGrant {
  subject: string;
  sessionId: string;
  action: string;
  /** The level the session reached, e.g. "aal2" (the `acr` claim). */
  acr: string;
  /** RFC 8176 method references, e.g. ["otp"] (the `amr` claim). */
  amr: readonly string[];
  /** When the user last answered a second factor (`auth_time`), in s. */
  authTime: number;
  /** The grant's id (`jti`). */
  grantId: string;
  /** The factor whose proof produced it (`fid`), when checked offline. */
  factorId?: string;
  /** True when CheckGrant consumed it (a single-use grant), false when it was checked offline. */
  checkedOnline: boolean;
}

/** What checking a call's grant came to: admitted, or refused with a GrantError / CheckGrant reason. */
export type GrantCheck = { grant: AdmittedGrant } | { refusal: string };

const maxTokenBytes = 4096;

// CheckGrant's refusals that mean "this grant will not do", as opposed to "could not check".
const onlineRefusals = new Set([
  "GRANT_INVALID",
  "GRANT_EXPIRED",
  "GRANT_MISMATCH",
  "GRANT_REVOKED",
  "GRANT_CONSUMED",
  "TRANSACTION_MISMATCH",
  "TRANSACTION_REQUIRED",
]);

/**
 * Checks `token` for `action`, `session` and, when the grant is bound to one, `transaction`:
 * offline against the published keys and the revocation feed (`verifyGrant`), then online with
 * CheckGrant when the grant is single-use, which consumes it. A grant that will not do resolves
 * to its refusal; failing to check at all (keys or Stepgate unreachable) rejects.
 */
export async function checkGrant(
  stepgate: Pick<StepgateClient, "verifyGrant" | "stepUp">,
  token: string,
  expect: { action: string; session: CallSession; transaction: TransactionInput | undefined },
): Promise<GrantCheck> {
  if (token.length > maxTokenBytes || !/^[\x21-\x7e]+$/.test(token)) return { refusal: "GRANT_INVALID" };
  // Details go with bound grants only: an unbound grant checked with details is refused as unbound.
  const transaction = isBound(token) ? expect.transaction : undefined;
  const { subject, sessionId } = expect.session;
  try {
    const claims = await stepgate.verifyGrant(token, {
      action: expect.action,
      subject,
      sessionId,
      ...(transaction === undefined ? {} : { transaction }),
    });
    const grant: AdmittedGrant = {
      subject: claims.sub,
      sessionId: claims.sid,
      action: claims.action,
      acr: claims.acr,
      amr: claims.amr,
      authTime: claims.auth_time,
      grantId: claims.jti,
      ...(claims.fid ? { factorId: claims.fid } : {}),
      checkedOnline: false,
    };
    return { grant };
  } catch (error) {
    if (!(error instanceof GrantError)) throw error;
    // A spent single-use grant is on the feed as consumed: named as CheckGrant would name it.
    if (error.revocation === "grant_consumed") return { refusal: "GRANT_CONSUMED" };
    if (error.reason !== "GRANT_SINGLE_USE") return { refusal: error.reason };
  }
  // Offline checks passed (keys, audience, action, subject, session, transaction): spend it.
  try {
    const checked = await stepgate.stepUp.checkGrant({
      token,
      action: expect.action,
      ...(transaction === undefined ? {} : { transaction }),
    });
    const grant: AdmittedGrant = {
      subject: checked.subject,
      sessionId: checked.sessionId,
      action: checked.action,
      acr: checked.acr,
      amr: checked.amr,
      authTime: Number(checked.authTime?.seconds ?? 0n),
      grantId: checked.grantId,
      checkedOnline: true,
    };
    return { grant };
  } catch (error) {
    const refusal =
      error instanceof ConnectError ? stepgateReasons(error).find((r) => onlineRefusals.has(r)) : undefined;
    if (refusal === undefined) throw error;
    return { refusal };
  }
}

// Reads the unverified payload only to decide whether details belong in the check; the check decides.
function isBound(token: string): boolean {
  const payload = token.split(".")[1];
  if (!payload) return false;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
    return (
      typeof claims === "object" && claims !== null && typeof (claims as { txn?: unknown }).txn === "string"
    );
  } catch {
    return false;
  }
}
