import type { Challenge } from "../domain/challenge.ts";
import type { PasskeyRecord } from "../domain/passkey.ts";
import { type Policy, relyingPartyFor } from "../policy/policy.ts";
import { requirementOf } from "../policy/requirement.ts";
import { type ChallengeBinding, type PasskeyRefusal, passkeyAmr, passkeyChallenge } from "./passkey.ts";
import { type Asserted, verifyAssertion } from "./passkey-ceremonies.ts";

/** What a challenge's WebAuthn challenge is bound to: the challenge and who it was issued to, for what. */
export const bindingOf = (
  c: Pick<Challenge, "id" | "subject" | "sessionId" | "action" | "caller" | "transaction">,
): ChallengeBinding => ({
  challengeId: c.id,
  subject: c.subject,
  sessionId: c.sessionId,
  action: c.action,
  caller: c.caller,
  ...(c.transaction ? { transaction: c.transaction.digest } : {}),
});

/** A checked assertion: the passkey that made it and what it showed, or why it was refused. */
export type AssertedPasskey =
  | { ok: true; record: PasskeyRecord; asserted: Asserted }
  | {
      ok: false;
      refusal: PasskeyRefusal /** The passkey, when the refusal is about it (counter_regressed). */;
      record?: PasskeyRecord;
    };

/**
 * Checks a passkey's answer to a challenge against the passkeys the challenge offered, the
 * caller's relying party and the action's requirement; writes nothing. The counter is compared with
 * the challenge's copy only: the stores' copies decide at claim time (factors/check-proof.ts).
 */
export type AssertPasskey = (challenge: Challenge, responseJson: string) => Promise<AssertedPasskey>;

export interface AssertPasskeyDeps {
  policy: Pick<Policy, "actions" | "relyingParties" | "defaultRelyingParty">;
  /** The fleet's passkey challenge key (32 bytes). */
  challengeKey: Uint8Array;
}

export function createAssertPasskey({ policy, challengeKey }: AssertPasskeyDeps): AssertPasskey {
  return async (challenge, responseJson) => {
    const relyingParty = relyingPartyFor(policy, challenge.caller);
    const action = requirementOf(policy, challenge);
    const records = challenge.passkeys ?? [];
    if (!relyingParty || !action) return { ok: false, refusal: "unknown_credential" };
    const verified = await verifyAssertion({
      responseJson,
      challenge: passkeyChallenge(challengeKey, bindingOf(challenge)),
      relyingParty,
      requirement: action.passkey,
      credentials: records.map((r) => ({ ...r, publicKey: Buffer.from(r.publicKey, "base64url") })),
    });
    if (verified.ok) {
      const record = records.find((r) => r.credentialId === verified.value.credentialId) as PasskeyRecord;
      return { ok: true, record, asserted: verified.value };
    }
    if (verified.refusal !== "counter_regressed") return { ok: false, refusal: verified.refusal };
    const id = (JSON.parse(responseJson) as { id: string }).id;
    const record = records.find((r) => r.credentialId === id);
    return { ok: false, refusal: verified.refusal, ...(record ? { record } : {}) };
  };
}

/**
 * The level and RFC 8176 amr a passkey's assertion earns: `methods.passkey.device_bound_acr`
 * for a device-bound, user-verified passkey (NIST SP 800-63B-4 AAL3: a non-exportable key and
 * a second factor on the device), `methods.passkey.acr` otherwise.
 */
export function passkeyAssurance(
  policy: Pick<Policy, "methods">,
  asserted: Pick<Asserted, "userVerified" | "backupEligible">,
): { acr: string; amr: string[] } {
  const method = policy.methods.passkey;
  const strongest = asserted.userVerified && !asserted.backupEligible ? method?.deviceBoundAcr : undefined;
  return { acr: strongest ?? method?.acr ?? "", amr: passkeyAmr(asserted) };
}
