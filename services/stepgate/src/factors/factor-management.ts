import { managementActions } from "../config/policy.ts";
import { newId } from "../crypto/random-id.ts";
import { toSeconds } from "../domain/clock.ts";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";
import type { Stepgate } from "../stepgate.ts";
import { totpBinding } from "./check-proof.ts";
import type { FactorRow } from "./factor-store.ts";
import { hashRecoveryCode, newRecoveryCodes, newRecoverySalt } from "./recovery-codes.ts";
import { matchTotp, newTotpSecret, totpUri } from "./totp.ts";

const confirmWindowMs = 10 * 60_000;
const maxPendingPerSubject = 5;
const confirmAttempts = 5;

/**
 * Once the subject has an active factor, a change needs a fresh grant for the management
 * action, issued to this caller: a stolen primary session alone cannot plant an authenticator.
 * The grant is consumed, so it authorises one change.
 */
async function authorizeChange(sg: Stepgate, subject: string, caller: string, action: string, grant: string) {
  if (!(await sg.factors.hasActiveFactor(subject))) return;
  assertThat(grant !== "", "GRANT_REQUIRED", `a grant for ${action} is required`);
  const policy = sg.policy.actions.get(action);
  assertThat(policy, "UNKNOWN_ACTION", "no policy for this action");
  await sg.grants.check(grant, {
    audience: caller,
    action,
    subject,
    maxAgeSeconds: policy.maxAge,
    consume: true,
  });
}

export interface EnrollTotpInput {
  subject: string;
  label: string;
  accountName: string;
  grant: string;
  caller: string;
  issuerName: string;
}

export async function enrollTotp(sg: Stepgate, input: EnrollTotpInput) {
  await authorizeChange(sg, input.subject, input.caller, managementActions.enrollTotp, input.grant);
  const now = sg.clock();
  await sg.factors.deleteExpiredPending(input.subject, new Date(now));
  assertThat(
    (await sg.factors.countPending(input.subject)) < maxPendingPerSubject,
    "FACTOR_STATE",
    "too many unconfirmed enrolments",
  );
  const id = newId();
  const secret = newTotpSecret();
  const confirmBy = new Date(now + confirmWindowMs);
  await sg.factors.insertTotp({
    id,
    subject: input.subject,
    label: input.label,
    secret: sg.keyRing.seal(Buffer.from(secret, "utf8"), totpBinding(id, input.subject)),
    keyId: sg.keyRing.activeKeyId,
    createdAt: new Date(now),
    confirmBy,
  });
  sg.audit.record({
    type: "factor.enrolled",
    subject: input.subject,
    caller: input.caller,
    details: { factor_id: id },
  });
  return { factorId: id, secret, uri: totpUri(input.issuerName, input.accountName, secret), confirmBy };
}

export async function confirmTotp(
  sg: Stepgate,
  subject: string,
  factorId: string,
  code: string,
  caller: string,
) {
  const factor = await sg.factors.find(subject, factorId);
  assertThat(factor && factor.method === "totp", "FACTOR_NOT_FOUND", "no such factor");
  assertThat(factor.status === "pending", "FACTOR_STATE", "factor is already confirmed");
  const now = sg.clock();
  assertThat(
    factor.confirmBy && factor.confirmBy.getTime() > now,
    "FACTOR_STATE",
    "enrolment expired; enrol again",
  );
  const used = await sg.hot.increment(`confirm:${factorId}`, confirmWindowMs);
  assertThat(used <= confirmAttempts, "CHALLENGE_LOCKED", "no attempts left; enrol again", {
    metadata: { attempts_remaining: "0" },
  });
  const secret = sg.keyRing.open(factor.secret as Buffer, totpBinding(factorId, subject)).toString("utf8");
  const step = matchTotp(secret, code, toSeconds(now));
  if (step === undefined) {
    throw new StepgateError("WRONG_CODE", "wrong code", {
      metadata: { attempts_remaining: String(confirmAttempts - used) },
    });
  }
  assertThat(
    await sg.factors.activate(factorId, step, new Date(now)),
    "FACTOR_STATE",
    "factor is no longer pending",
  );
  sg.audit.record({ type: "factor.confirmed", subject, caller, details: { factor_id: factorId } });
  return (await sg.factors.find(subject, factorId)) as FactorRow;
}

export async function createRecoveryCodes(sg: Stepgate, subject: string, grant: string, caller: string) {
  await authorizeChange(sg, subject, caller, managementActions.createRecoveryCodes, grant);
  const codes = newRecoveryCodes();
  const salt = newRecoverySalt();
  const hashes = await Promise.all(codes.map((c) => hashRecoveryCode(c, salt)));
  const factorId = newId();
  await sg.factors.replaceRecoverySet(subject, factorId, salt, hashes, new Date(sg.clock()));
  sg.audit.record({ type: "recovery_codes.created", subject, caller, details: { factor_id: factorId } });
  return { factorId, codes };
}

export async function removeFactor(
  sg: Stepgate,
  subject: string,
  factorId: string,
  grant: string,
  caller: string,
) {
  const factor = await sg.factors.find(subject, factorId);
  assertThat(factor, "FACTOR_NOT_FOUND", "no such factor");
  await authorizeChange(sg, subject, caller, managementActions.removeFactor, grant);
  assertThat(await sg.factors.remove(subject, factorId), "FACTOR_NOT_FOUND", "no such factor");
  sg.audit.record({ type: "factor.removed", subject, caller, details: { factor_id: factorId } });
}
