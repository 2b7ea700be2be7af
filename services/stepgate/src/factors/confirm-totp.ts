import type { AuditLog } from "../audit/audit-log.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { type Clock, toSeconds } from "../domain/clock.ts";
import type { Factor } from "../domain/factor.ts";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";
import type { AttemptCounters } from "../store/attempt-counters.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { TotpStepClaims } from "../store/totp-step-claims.ts";
import { confirmWindowMs } from "./enroll-totp.ts";
import { matchTotp } from "./totp.ts";
import { openTotpSecret } from "./totp-secret.ts";

const confirmAttempts = 5;

export interface ConfirmTotpInput {
  subject: string;
  factorId: string;
  /** Six digits from the authenticator app. */
  code: string;
  caller: string;
}

/**
 * Activates a pending TOTP factor with a code from it; its step is claimed, so the code cannot
 * answer a challenge afterwards. Fails with FACTOR_NOT_FOUND, FACTOR_STATE (already active, or
 * the 10-minute window passed), WRONG_CODE, or CHALLENGE_LOCKED after 5 codes.
 */
export type ConfirmTotp = (input: ConfirmTotpInput) => Promise<Factor>;

export interface ConfirmTotpDeps {
  factors: Pick<FactorStore, "find" | "activate">;
  attempts: Pick<AttemptCounters, "countConfirmation">;
  stepClaims: TotpStepClaims;
  keyRing: KeyRing;
  audit: Pick<AuditLog, "record">;
  /** Puts the subject's new factors in the factor cache (best effort). */
  refreshEnrolled: (subject: string) => Promise<void>;
  clock: Clock;
}

export function createConfirmTotp(deps: ConfirmTotpDeps): ConfirmTotp {
  return async ({ subject, factorId, code, caller }) => {
    const factor = await deps.factors.find(subject, factorId);
    assertThat(factor && factor.method === "totp" && factor.secret, "FACTOR_NOT_FOUND", "no such factor");
    assertThat(factor.status === "pending", "FACTOR_STATE", "factor is already confirmed");
    const now = deps.clock();
    assertThat(
      factor.confirmBy && factor.confirmBy.getTime() > now,
      "FACTOR_STATE",
      "enrolment expired; enrol again",
    );
    const used = await deps.attempts.countConfirmation(factorId, confirmWindowMs);
    assertThat(used <= confirmAttempts, "CHALLENGE_LOCKED", "no attempts left; enrol again", {
      metadata: { attempts_remaining: "0" },
    });
    const secret = openTotpSecret(deps.keyRing, factorId, subject, factor.secret);
    const step = matchTotp(secret, code, toSeconds(now));
    if (step === undefined) {
      throw new StepgateError("WRONG_CODE", "wrong code", {
        metadata: { attempts_remaining: String(confirmAttempts - used) },
      });
    }
    assertThat(
      await deps.factors.activate(factorId, step, new Date(now)),
      "FACTOR_STATE",
      "factor is no longer pending",
    );
    // The hot store's copy of claimed steps learns the confirming code too, so it cannot answer a
    // challenge while PostgreSQL is down (best effort: PostgreSQL holds it already).
    await deps.stepClaims.claim(factorId, step, `confirm:${factorId}`).catch(() => {});
    await deps.refreshEnrolled(subject);
    await deps.audit.record({ type: "factor.confirmed", subject, caller, details: { factor_id: factorId } });
    return (await deps.factors.find(subject, factorId)) as Factor;
  };
}
