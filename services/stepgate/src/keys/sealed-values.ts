import { serviceSecretBinding } from "../crypto/fingerprint.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { Challenge } from "../domain/challenge.ts";
import { totpBinding } from "../factors/totp-secret.ts";
import { sealBinding as signingKeyBinding } from "../grants/new-signing-key.ts";
import { sealedResultOf, withSealedResult } from "../stepup/idempotency.ts";
import { verifyResultBinding } from "../stepup/verify.ts";
import { parseCachedFactors } from "../store/factor-cache.ts";
import type { SealedRow, SealedTable } from "../store/sealed-rows.ts";

/** Whether `sealed` was written with the ring's active key. */
export function isCurrent(keyRing: KeyRing, sealed: Uint8Array): boolean {
  return keyRing.keyIdOf(sealed) === keyRing.activeKeyId;
}

/** Opens `sealed` and seals its plaintext again under the active key, for the same binding. */
export function resealed(keyRing: KeyRing, sealed: Uint8Array, binding: string): Buffer {
  return keyRing.seal(keyRing.open(sealed, binding), binding);
}

/** The binding a row's sealed value was written for: the same string its owner seals and opens with. */
export function rowBinding(table: SealedTable, row: SealedRow): string {
  if (table === "factors") return totpBinding(row.id, row.subject ?? "");
  if (table === "signing_keys") return signingKeyBinding(row.id);
  return serviceSecretBinding(row.id);
}

/** A stored challenge's id (JSON, store/challenge-store.ts). */
export function challengeIdOf(stored: string): string {
  return (JSON.parse(stored) as Challenge).id;
}

/** Whether every TOTP secret a stored challenge carries (copies of its factors' rows) is under the active key. */
export function challengeIsCurrent(keyRing: KeyRing, stored: string): boolean {
  const challenge = JSON.parse(stored) as Challenge;
  return (challenge.totp ?? []).every((f) => isCurrent(keyRing, Buffer.from(f.sealed, "base64")));
}

/** The stored challenge with its TOTP secrets sealed again under the active key; undefined if they are already. */
export function resealChallenge(keyRing: KeyRing, stored: string): string | undefined {
  if (challengeIsCurrent(keyRing, stored)) return undefined;
  const challenge = JSON.parse(stored) as Challenge;
  const totp = (challenge.totp ?? []).map((f) => {
    const sealed = Buffer.from(f.sealed, "base64");
    if (isCurrent(keyRing, sealed)) return f;
    return {
      ...f,
      sealed: resealed(keyRing, sealed, totpBinding(f.id, challenge.subject)).toString("base64"),
    };
  });
  return JSON.stringify({ ...challenge, totp });
}

/** Whether a recorded Verify result (a grant, sealed) is under the active key; a recorded failure holds nothing sealed. */
export function verifyResultIsCurrent(keyRing: KeyRing, recorded: string): boolean {
  const sealed = sealedResultOf(recorded);
  return sealed === undefined || isCurrent(keyRing, Buffer.from(sealed, "base64"));
}

/**
 * The recorded Verify result of `claim` at challenge `challengeId`, its grant sealed again under
 * the active key; undefined if it is already (or holds nothing sealed).
 */
export function resealVerifyResult(
  keyRing: KeyRing,
  recorded: string,
  challengeId: string,
  claim: string,
): string | undefined {
  if (verifyResultIsCurrent(keyRing, recorded)) return undefined;
  const sealed = Buffer.from(sealedResultOf(recorded) ?? "", "base64");
  const again = resealed(keyRing, sealed, verifyResultBinding(challengeId, claim));
  return withSealedResult(recorded, again.toString("base64"));
}

/** Whether a factor cache entry (`version:sealed`) was sealed under the active key. */
export function factorCacheIsCurrent(keyRing: KeyRing, stored: string): boolean {
  const cached = parseCachedFactors(stored);
  return cached === undefined || isCurrent(keyRing, Buffer.from(cached.sealed, "base64"));
}
