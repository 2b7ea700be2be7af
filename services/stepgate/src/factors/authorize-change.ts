import { type Clock, toSeconds } from "../domain/clock.ts";
import type { ChangeAuthorization } from "../domain/factor.ts";
import { assertThat } from "../domain/stepgate-error.ts";
import type { CheckGrant } from "../grants/check-grant.ts";
import { assertFreshSignIn } from "../identity/prove-subject.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import type { Policy } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { SessionStore } from "../store/session-store.ts";

/** A factor change a caller asks for. */
export interface FactorChange {
  subject: string;
  caller: string;
  /** The management action that guards it (policy `managementActions`). */
  action: string;
  /** A grant for `action`; "" when the caller has none. */
  grant: string;
  /** The subject's verified primary-session token, when the caller sent one (identity/). */
  proof: SubjectToken | undefined;
  /** The call's idempotency key ("" for none): a retried change may spend its grant again. */
  idempotencyKey?: string;
}

/**
 * Once the subject has an active factor, a change needs a fresh grant for the management action,
 * issued to this caller: a stolen primary session alone cannot plant an authenticator. The grant
 * is consumed, so it authorises one change (a retry with the same idempotency key spends it
 * again). A grant sent while the subject has no factor is checked the same way and authorises the
 * change. Without one, and before the first factor, a change needs the user's recent sign-in (a
 * subject token whose `auth_time` is within the policy's `first_factor_max_age`), unless the
 * policy trusts no issuer (insecure development mode only). Resolves to what authorised it, which
 * the change must keep true until it takes effect (a first factor's authorisation holds only while
 * the subject has no active factor). Fails with GRANT_REQUIRED, UNKNOWN_ACTION,
 * SUBJECT_PROOF_REQUIRED, SUBJECT_PROOF_STALE, SUBJECT_PROOF_INVALID or any reason of CheckGrant.
 */
export type AuthorizeChange = (change: FactorChange) => Promise<ChangeAuthorization>;

export interface AuthorizeChangeDeps {
  factors: Pick<FactorStore, "hasActiveFactor">;
  checkGrant: CheckGrant;
  policy: Pick<Policy, "actions" | "subjectProof">;
  clock: Clock;
}

// The same skew CheckGrant and the grant verifier tolerate.
const clockToleranceSeconds = 5;

export function createAuthorizeChange({
  factors,
  checkGrant,
  policy,
  clock,
}: AuthorizeChangeDeps): AuthorizeChange {
  return async ({ subject, caller, action, grant, proof, idempotencyKey }) => {
    if (grant === "") {
      assertThat(
        !(await factors.hasActiveFactor(subject)),
        "GRANT_REQUIRED",
        `a grant for ${action} is required`,
      );
      const proofPolicy = policy.subjectProof;
      if (proofPolicy)
        assertFreshSignIn(proof, toSeconds(clock()), proofPolicy.firstFactorMaxAge, clockToleranceSeconds);
      return { kind: "first_factor" };
    }
    const actionPolicy = policy.actions.get(action);
    assertThat(actionPolicy, "UNKNOWN_ACTION", "no policy for this action");
    const claims = await checkGrant(grant, {
      audience: caller,
      action,
      subject,
      maxAgeSeconds: actionPolicy.maxAge,
      consume: true,
      ...(idempotencyKey ? { idempotencyKey } : {}),
    });
    return {
      kind: "grant",
      grantId: claims.jti,
      sessionId: claims.sid,
      ...(claims.fid === undefined ? {} : { factorId: claims.fid }),
    };
  };
}

/** A pending factor about to become active, and what authorised its enrolment. */
export interface Activation extends Omit<FactorChange, "idempotencyKey"> {
  /** The authorisation its enrolment recorded; undefined for rows from before it was recorded. */
  enrolledUnder: ChangeAuthorization | undefined;
}

/**
 * What lets a pending factor become active now: a grant sent with the confirmation; else the grant
 * the enrolment spent, unless its session ended or its factor was removed since; else a first
 * factor's authorisation against the subject's state now (no active factor, a fresh sign-in).
 * Pending rows that recorded nothing are first-factor enrolments, the strictest reading. Fails with
 * GRANT_REVOKED or a reason of AuthorizeChange.
 */
export async function authorizeActivation(
  deps: { authorizeChange: AuthorizeChange; sessions: Pick<SessionStore, "revocations"> },
  { enrolledUnder, ...change }: Activation,
): Promise<ChangeAuthorization> {
  if (change.grant === "" && enrolledUnder?.kind === "grant") {
    const ended = await deps.sessions.revocations(
      change.subject,
      enrolledUnder.sessionId,
      enrolledUnder.factorId,
    );
    assertThat(
      ended.sessionEndedAt === undefined && ended.factorEndedAt === undefined,
      "GRANT_REVOKED",
      "the grant this enrolment was authorised with was revoked; confirm with a new grant",
    );
    return enrolledUnder;
  }
  return deps.authorizeChange(change);
}
