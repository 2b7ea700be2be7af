import type { AuditLog } from "../audit/audit-log.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { newId } from "../crypto/random-id.ts";
import type { Clock } from "../domain/clock.ts";
import { provenBy } from "../identity/prove-subject.ts";
import type { SubjectToken } from "../identity/subject-tokens.ts";
import { managementActions } from "../policy/policy.ts";
import type { FactorStore } from "../store/factor-store.ts";
import type { AuthorizeChange } from "./authorize-change.ts";
import { newTotpSecret, totpUri } from "./totp.ts";
import { sealTotpSecret } from "./totp-secret.ts";

/** How long a new enrolment may wait for its confirming code, in ms. */
export const confirmWindowMs = 10 * 60_000;
const maxPendingPerSubject = 5;

export interface EnrollTotpInput {
  subject: string;
  /** Shown in factor lists. */
  label: string;
  /** Shown by authenticator apps next to the issuer. */
  accountName: string;
  /** A grant for stepgate.enroll_totp; required once the subject has an active factor. */
  grant: string;
  caller: string;
  /** The subject's verified primary-session token, if the caller sent one; a first factor needs it. */
  proof?: SubjectToken | undefined;
  /** The call's idempotency key ("" for none): a retry may spend the same grant again. */
  idempotencyKey?: string;
}

/** A pending TOTP factor; the secret and URI are shown once and never again. */
export interface EnrolledTotp {
  factorId: string;
  /** Base32. */
  secret: string;
  /** otpauth:// URI for a QR code. */
  uri: string;
  confirmBy: Date;
}

/**
 * Starts a TOTP enrolment (RFC 6238, 160-bit secret sealed at rest). A subject keeps at most 5
 * unconfirmed enrolments: a new one drops the oldest. What authorised it is recorded with it and
 * checked again when it is confirmed (ConfirmTotp). A retry with the same idempotency key starts
 * another enrolment (the first one's secret never reached the user) on the same grant. Fails with
 * GRANT_REQUIRED or a reason of AuthorizeChange.
 */
export type EnrollTotp = (input: EnrollTotpInput) => Promise<EnrolledTotp>;

export interface EnrollTotpDeps {
  factors: Pick<FactorStore, "deleteExpiredPending" | "dropOldestPending" | "insertTotp">;
  authorizeChange: AuthorizeChange;
  keyRing: KeyRing;
  audit: Pick<AuditLog, "record">;
  clock: Clock;
  /** The issuer name authenticator apps show next to the account. */
  issuerName: string;
}

export function createEnrollTotp(deps: EnrollTotpDeps): EnrollTotp {
  return async (input) => {
    const { subject, caller, grant, proof, idempotencyKey = "" } = input;
    const authorizedBy = await deps.authorizeChange({
      ...{ subject, caller, grant, proof, idempotencyKey },
      action: managementActions.enrollTotp,
    });
    const now = deps.clock();
    await deps.factors.deleteExpiredPending(input.subject, new Date(now));
    // Unconfirmed enrolments never block a new one: the oldest make room, so no caller can lock a
    // user out of enrolling by leaving enrolments unconfirmed.
    const dropped = await deps.factors.dropOldestPending(input.subject, maxPendingPerSubject - 1);
    const id = newId();
    const secret = newTotpSecret();
    const confirmBy = new Date(now + confirmWindowMs);
    await deps.factors.insertTotp({
      id,
      subject: input.subject,
      label: input.label,
      secret: sealTotpSecret(deps.keyRing, id, input.subject, secret),
      keyId: deps.keyRing.activeKeyId,
      createdAt: new Date(now),
      confirmBy,
      authorizedBy,
    });
    await deps.audit.record({
      type: "factor.enrolled",
      subject: input.subject,
      caller: input.caller,
      details: {
        factor_id: id,
        ...(dropped.length > 0 ? { dropped_pending: dropped } : {}),
        ...provenBy(input.proof),
      },
    });
    return { factorId: id, secret, uri: totpUri(deps.issuerName, input.accountName, secret), confirmBy };
  };
}
