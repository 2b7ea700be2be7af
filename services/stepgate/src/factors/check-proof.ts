import type { KeyRing } from "../crypto/key-ring.ts";
import type { SealedTotp } from "../domain/challenge.ts";
import { toSeconds } from "../domain/clock.ts";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { MethodName } from "../domain/method.ts";
import type { FactorStore, StepClaim } from "../store/factor-store.ts";
import type { PasskeyCounters } from "../store/passkey-counters.ts";
import type { CounterClaim, PasskeyStore } from "../store/passkey-store.ts";
import type { RecoveryCodeStore } from "../store/recovery-code-store.ts";
import type { SessionStore } from "../store/session-store.ts";
import type { TotpStepClaims } from "../store/totp-step-claims.ts";
import { hashRecoveryCode, looksLikeRecoveryCode } from "./recovery-codes.ts";
import { matchTotp } from "./totp.ts";
import { openTotpSecret } from "./totp-secret.ts";

/**
 * The outcome of checking a proof: "ok" means the code was claimed for this call, with the factor
 * that proved it; "removed" that it matched a factor removed since the challenge was opened.
 */
export type Checked =
  | { result: "ok"; factorId: string; remaining: number }
  | { result: "wrong" | "replayed" | "removed" }
  /** A passkey whose signature counter did not grow (a cloned authenticator). */
  | { result: "cloned"; factorId: string };

/** One proof to check. */
export interface Proof {
  method: MethodName;
  subject: string;
  code: string;
  /** Who claims the code (the challenge and idempotency key): a retry of the same call may claim it again. */
  claim: string;
  /** Epoch ms. */
  now: number;
  /** The subject's TOTP factors as the challenge saw them; read from the store when absent. */
  totp?: SealedTotp[] | undefined;
  /** A passkey's verified assertion: the passkey and the signature counter it signed. */
  passkey?: { factorId: string; counter: number } | undefined;
}

/**
 * Checks a code against the subject's factors of its method and claims it, so it is accepted
 * once (RFC 6238 5.2 for TOTP; single use for recovery codes). A TOTP step is claimed in the hot
 * store and in PostgreSQL; while PostgreSQL is down the hot store's claim decides and PostgreSQL's
 * copy is queued (`deferClaim`). Store errors are thrown as they are.
 */
export type CheckProof = (proof: Proof) => Promise<Checked>;

/** A passkey counter the hot store accepted, queued for PostgreSQL while it is down; false when it cannot be queued. */
export type DeferCounter = (counter: {
  subject: string;
  factorId: string;
  counter: number;
  claim: string;
  at: number;
}) => Promise<boolean>;

/** A claim the hot store granted, queued for PostgreSQL while it is down; false when it cannot be queued. */
export type DeferClaim = (claim: {
  subject: string;
  factorId: string;
  step: number;
  claim: string;
  at: number;
}) => Promise<boolean>;

export interface CheckProofDeps {
  factors: Pick<FactorStore, "activeTotp" | "claimStep">;
  passkeys: Pick<PasskeyStore, "claimCounter">;
  /** The hot store's copy of passkey signature counters, checked before PostgreSQL's. */
  passkeyCounters: PasskeyCounters;
  /** Queues a passkey counter for PostgreSQL when it is down (the audit outbox); absent without Redis. */
  deferCounter?: DeferCounter;
  /** The hot store's copy of claimed steps, checked before PostgreSQL's. */
  stepClaims: TotpStepClaims;
  /** Queues a claim for PostgreSQL when it is down (the audit outbox); absent without Redis. */
  deferClaim?: DeferClaim;
  recoveryCodes: RecoveryCodeStore;
  keyRing: KeyRing;
  /** Where removed factors are recorded: a claim queued while PostgreSQL is down must not use one. */
  endedFactors: Pick<SessionStore, "factorEnded">;
}

export function createCheckProof(deps: CheckProofDeps): CheckProof {
  return (proof) => {
    if (proof.method === "totp") return checkTotp(deps, proof);
    if (proof.method === "passkey") return checkPasskey(deps, proof);
    return checkRecoveryCode(deps, proof);
  };
}

/**
 * Claims a verified passkey assertion's signature counter (WebAuthn 6.1.1): the hot store's copy
 * first (shared, and the only one while PostgreSQL is down), then PostgreSQL's. A counter that did
 * not grow where the authenticator counts is "cloned"; authenticators that keep no counter (0) rely
 * on the challenge being answered once. While PostgreSQL is down the counter is queued for it.
 */
async function checkPasskey(deps: CheckProofDeps, proof: Proof): Promise<Checked> {
  const { subject, claim, now } = proof;
  const { factorId, counter } = proof.passkey ?? { factorId: "", counter: 0 };
  if (counter > 0 && (await deps.passkeyCounters.claim(factorId, counter, claim)) === "behind") {
    // A retry of the call that took this counter, overtaken since, is this call's own.
    const mine = (await deps.passkeyCounters.ownerOf(factorId, counter)) === claim;
    return mine ? { result: "ok", factorId, remaining: 0 } : { result: "cloned", factorId };
  }
  const claimed = await deps.passkeys
    .claimCounter(factorId, counter, claim, new Date(now))
    .catch(async (error: unknown) =>
      counterWhileDown(deps, error, { subject, factorId, counter, claim, at: now }),
    );
  if (claimed === "regressed") return { result: "cloned", factorId };
  if (claimed === "removed") return { result: "removed" };
  if (counter > 0) await deps.passkeyCounters.own(factorId, counter, claim).catch(() => {});
  return { result: "ok", factorId, remaining: 0 };
}

/** PostgreSQL is down: the hot store's counter stands and PostgreSQL learns it from the queue. */
async function counterWhileDown(
  deps: CheckProofDeps,
  error: unknown,
  counter: Parameters<DeferCounter>[0],
): Promise<CounterClaim> {
  if (!(error instanceof DependencyUnavailableError) || !deps.deferCounter) throw error;
  if (await deps.endedFactors.factorEnded(counter.factorId)) return "removed";
  // An authenticator that keeps no counter leaves nothing for PostgreSQL to learn.
  if (counter.counter > 0 && !(await deps.deferCounter(counter))) throw error;
  return "claimed";
}

async function checkTotp(deps: CheckProofDeps, proof: Proof): Promise<Checked> {
  const { factors, stepClaims, keyRing } = deps;
  const { subject, code, claim, now } = proof;
  const candidates =
    proof.totp ??
    (await factors.activeTotp(subject)).flatMap((f) =>
      f.secret ? [{ id: f.id, sealed: f.secret.toString("base64") }] : [],
    );
  for (const factor of candidates) {
    const secret = openTotpSecret(keyRing, factor.id, subject, Buffer.from(factor.sealed, "base64"));
    const step = matchTotp(secret, code, toSeconds(now));
    if (step === undefined) continue;
    // Both copies must agree the step is new: the hot store's (shared and fast) and PostgreSQL's
    // (durable: it still knows the step after the hot store lost its data).
    if ((await stepClaims.claim(factor.id, step, claim)) === "behind") {
      // A retry of the call that took this step, overtaken by a later step since (its reply was
      // lost): the step is this call's, so the retry is answered as its first attempt was.
      const mine = (await stepClaims.ownerOf(factor.id, step)) === claim;
      return mine ? { result: "ok", factorId: factor.id, remaining: 0 } : { result: "replayed" };
    }
    const claimed = await factors
      .claimStep(factor.id, step, claim, new Date(now))
      .catch(async (error: unknown) =>
        claimWhileDown(deps, error, { subject, factorId: factor.id, step, claim, at: now }),
      );
    if (claimed !== "claimed") return { result: claimed };
    // Best effort: it serves only a retry overtaken by a later step.
    await stepClaims.own(factor.id, step, claim).catch(() => {});
    return { result: "ok", factorId: factor.id, remaining: 0 };
  }
  return { result: "wrong" };
}

/**
 * PostgreSQL is down: the hot store's claim stands and PostgreSQL learns it from the queue, unless
 * the hot store knows the factor was removed. Rethrows `error` when the claim cannot be queued.
 */
async function claimWhileDown(
  deps: CheckProofDeps,
  error: unknown,
  claim: Parameters<DeferClaim>[0],
): Promise<StepClaim> {
  if (!(error instanceof DependencyUnavailableError) || !deps.deferClaim) throw error;
  if (await deps.endedFactors.factorEnded(claim.factorId)) return "removed";
  if (!(await deps.deferClaim(claim))) throw error;
  return "claimed";
}

async function checkRecoveryCode({ recoveryCodes }: CheckProofDeps, proof: Proof): Promise<Checked> {
  const { subject, code, claim, now } = proof;
  const set = await recoveryCodes.activeSet(subject);
  if (!set || !looksLikeRecoveryCode(code)) return { result: "wrong" };
  const hash = await hashRecoveryCode(code, set.salt);
  const remaining = await recoveryCodes.use(set.factorId, hash, claim, new Date(now));
  if (remaining !== undefined) return { result: "ok", factorId: set.factorId, remaining };
  const usedBy = await recoveryCodes.usedBy(set.factorId, hash);
  if (usedBy === undefined) return { result: "wrong" };
  // The same call retried after its reply was lost: the code is already ours.
  if (usedBy === claim) return { result: "ok", factorId: set.factorId, remaining: set.remaining };
  return { result: "replayed" };
}
