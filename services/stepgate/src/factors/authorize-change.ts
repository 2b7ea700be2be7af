import { assertThat } from "../domain/stepgate-error.ts";
import type { CheckGrant } from "../grants/check-grant.ts";
import type { Policy } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";

/**
 * Once the subject has an active factor, a change needs a fresh grant for the management action,
 * issued to this caller: a stolen primary session alone cannot plant an authenticator. The grant
 * is consumed, so it authorises one change. Fails with GRANT_REQUIRED, UNKNOWN_ACTION or any
 * reason of CheckGrant.
 */
export type AuthorizeChange = (
  subject: string,
  caller: string,
  action: string,
  grant: string,
) => Promise<void>;

export interface AuthorizeChangeDeps {
  factors: Pick<FactorStore, "hasActiveFactor">;
  checkGrant: CheckGrant;
  policy: Pick<Policy, "actions">;
}

export function createAuthorizeChange({ factors, checkGrant, policy }: AuthorizeChangeDeps): AuthorizeChange {
  return async (subject, caller, action, grant) => {
    if (!(await factors.hasActiveFactor(subject))) return;
    assertThat(grant !== "", "GRANT_REQUIRED", `a grant for ${action} is required`);
    const actionPolicy = policy.actions.get(action);
    assertThat(actionPolicy, "UNKNOWN_ACTION", "no policy for this action");
    await checkGrant(grant, {
      audience: caller,
      action,
      subject,
      maxAgeSeconds: actionPolicy.maxAge,
      consume: true,
    });
  };
}
