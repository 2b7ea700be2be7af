import type { MethodName } from "../config/policy.ts";
import { toSeconds } from "../domain/clock.ts";
import type { Stepgate } from "../stepgate.ts";
import type { SealedTotp } from "./factor-store.ts";
import { hashRecoveryCode, looksLikeRecoveryCode } from "./recovery-codes.ts";
import { matchTotp } from "./totp.ts";

/** The outcome of checking a proof; "ok" means the code was claimed for this call. */
export type Checked = { result: "ok"; remaining: number } | { result: "wrong" | "replayed" };

/**
 * Checks a code against the subject's factors of `method` and claims it for `claim` (the
 * challenge and idempotency key), so it is accepted once, except for a retry of the same call.
 */
export function checkProof(
  sg: Stepgate,
  method: MethodName,
  subject: string,
  code: string,
  claim: string,
  now: number,
  totp?: SealedTotp[],
): Promise<Checked> {
  return method === "totp"
    ? checkTotp(sg, subject, code, claim, now, totp)
    : checkRecoveryCode(sg, subject, code, claim, now);
}

async function checkTotp(
  sg: Stepgate,
  subject: string,
  code: string,
  claim: string,
  now: number,
  snapshot?: SealedTotp[],
): Promise<Checked> {
  const factors =
    snapshot ??
    (await sg.factors.activeTotp(subject)).flatMap((f) =>
      f.secret ? [{ id: f.id, sealed: Buffer.from(f.secret).toString("base64") }] : [],
    );
  for (const factor of factors) {
    const sealed = Buffer.from(factor.sealed, "base64");
    const secret = sg.keyRing.open(sealed, totpBinding(factor.id, subject)).toString("utf8");
    const step = matchTotp(secret, code, toSeconds(now));
    if (step === undefined) continue;
    const claimed = await sg.factors.claimStep(factor.id, step, claim, new Date(now));
    return claimed ? { result: "ok", remaining: 0 } : { result: "replayed" };
  }
  return { result: "wrong" };
}

async function checkRecoveryCode(
  sg: Stepgate,
  subject: string,
  code: string,
  claim: string,
  now: number,
): Promise<Checked> {
  const set = await sg.factors.recoverySet(subject);
  if (!set?.recoverySalt || !looksLikeRecoveryCode(code)) return { result: "wrong" };
  const hash = await hashRecoveryCode(code, Buffer.from(set.recoverySalt));
  const remaining = await sg.factors.useRecoveryCode(set.id, hash, claim, new Date(now));
  if (remaining !== undefined) return { result: "ok", remaining };
  const usedBy = await sg.factors.recoveryCodeClaim(set.id, hash);
  if (usedBy === undefined) return { result: "wrong" };
  // The same call retried after its reply was lost: the code is already ours.
  if (usedBy === claim) return { result: "ok", remaining: set.recoveryCodesRemaining };
  return { result: "replayed" };
}

/** The binding that ties a sealed TOTP secret to its row. */
export function totpBinding(factorId: string, subject: string): string {
  return `factor:${factorId}:${subject}`;
}
