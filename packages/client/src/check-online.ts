import { type Client, ConnectError } from "@connectrpc/connect";
import type { StepUpService } from "@stepgate/api";
import { GrantError, type GrantErrorReason, type GrantExpectations } from "@stepgate/grant";
import { stepgateReasons } from "./replica-retry.ts";

// CheckGrant's refusals, as the offline verifier names them; GRANT_CONSUMED is a revocation offline.
const asGrantReason: Record<string, GrantErrorReason> = {
  GRANT_INVALID: "GRANT_INVALID",
  GRANT_EXPIRED: "GRANT_EXPIRED",
  GRANT_MISMATCH: "GRANT_MISMATCH",
  GRANT_REVOKED: "GRANT_REVOKED",
  GRANT_CONSUMED: "GRANT_REVOKED",
  TRANSACTION_MISMATCH: "GRANT_TRANSACTION_MISMATCH",
  TRANSACTION_REQUIRED: "GRANT_TRANSACTION_MISMATCH",
};

/**
 * A grant that passed offline, checked again with CheckGrant (which sees every revocation), for a
 * stale revocation feed. A refusal rejects with GrantError (GRANT_CONSUMED becomes GRANT_REVOKED);
 * a failure to reach Stepgate rejects with its ConnectError: "could not check" is not "bad grant".
 */
export async function checkOnline(
  stepUp: Client<typeof StepUpService>,
  token: string,
  expect: GrantExpectations,
): Promise<void> {
  try {
    await stepUp.checkGrant({
      token,
      action: expect.action,
      ...(expect.transaction === undefined ? {} : { transaction: expect.transaction as never }),
    });
  } catch (error) {
    if (!(error instanceof ConnectError)) throw error;
    const reason = stepgateReasons(error).find((r) => asGrantReason[r] !== undefined);
    if (reason === undefined) throw error;
    throw new GrantError(asGrantReason[reason] as GrantErrorReason, "grant refused by CheckGrant");
  }
}
