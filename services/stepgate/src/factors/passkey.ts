import { createHmac } from "node:crypto";
import type { PasskeyRequirement, RelyingParty } from "../domain/passkey.ts";
import { StepgateError } from "../domain/stepgate-error.ts";

export type { PasskeyRequirement, RelyingParty };

/** A registered passkey as Stepgate keeps it. */
export interface PasskeyCredential {
  /** base64url, unique per relying party. */
  credentialId: string;
  /** The COSE_Key bytes (RFC 9053). */
  publicKey: Uint8Array;
  /** The signature counter last seen; 0 for authenticators that keep none. */
  counter: number;
  backupEligible: boolean;
  /** The authenticator model, a lowercase UUID. */
  aaguid: string;
  rpId: string;
}

/** Why a passkey ceremony's answer was refused; none of them changes anything stored, but `counter_regressed`. */
export type PasskeyRefusal =
  | "malformed" // not a WebAuthn response, or over the size limit
  | "wrong_type" // clientData.type is not the ceremony's
  | "wrong_challenge" // made for another challenge (another session, action, caller or call)
  | "wrong_origin" // made on a page the relying party does not list
  | "wrong_rp" // made for another RP id
  | "user_verification_missing"
  | "backup_eligible" // a synced passkey where a device-bound one is required
  | "attestation_unsupported" // a format other than "none" and "packed"
  | "aaguid_not_allowed"
  | "unknown_credential"
  | "bad_signature"
  | "counter_regressed"; // a signature counter that did not grow: a cloned authenticator

export type Passkeyed<T> = { ok: true; value: T } | { ok: false; refusal: PasskeyRefusal };

/** Refusals of a well-formed answer that prove the caller's request wrong, not a guess wrong: no attempt is counted. */
export const inputRefusals: ReadonlySet<PasskeyRefusal> = new Set<PasskeyRefusal>([
  "malformed",
  "wrong_type",
  "wrong_challenge",
  "wrong_origin",
  "wrong_rp",
  "user_verification_missing",
  "backup_eligible",
  "attestation_unsupported",
  "aaguid_not_allowed",
  "unknown_credential",
]);

/**
 * The error a refusal is answered with: PASSKEY_MALFORMED (INVALID_ARGUMENT) for `malformed`,
 * PASSKEY_REFUSED (PERMISSION_DENIED) with metadata `refusal` otherwise, plus `metadata`.
 */
export function passkeyError(
  refusal: PasskeyRefusal | "already_registered",
  metadata: Record<string, string> = {},
): StepgateError {
  if (refusal === "malformed")
    return new StepgateError("PASSKEY_MALFORMED", "not a WebAuthn response, or too large", { metadata });
  return new StepgateError("PASSKEY_REFUSED", `passkey refused: ${refusal.replaceAll("_", " ")}`, {
    metadata: { refusal, ...metadata },
  });
}

/** What a WebAuthn challenge commits to: Stepgate's challenge and everything it is bound to. */
export interface ChallengeBinding {
  challengeId: string;
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
  /** The digest of the transaction the challenge is bound to, if it is. */
  transaction?: string;
}

/**
 * The WebAuthn challenge for a Stepgate challenge: HMAC-SHA256 under the fleet's key over the
 * binding's fields (length-prefixed), base64url. Any replica derives it again at Verify from the
 * challenge it stored, so an assertion made for another session, action or caller never matches.
 */
export function passkeyChallenge(key: Uint8Array, binding: ChallengeBinding): string {
  const mac = createHmac("sha256", key).update("stepgate passkey challenge v1");
  const parts = [binding.challengeId, binding.subject, binding.sessionId, binding.action, binding.caller];
  // A bound transaction is committed to as well: an assertion approves that transaction only.
  if (binding.transaction !== undefined) parts.push(`txn:${binding.transaction}`);
  for (const part of parts) {
    const bytes = Buffer.from(part, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    mac.update(length).update(bytes);
  }
  return mac.digest("base64url");
}

/**
 * RFC 8176 method references for a passkey: `hwk` for a device-bound key, `swk` for a synced one
 * (its private key leaves the device), with `user` for user presence and `mfa` when the
 * authenticator verified the user (the key and the biometric or PIN are two factors).
 */
export function passkeyAmr(asserted: { userVerified: boolean; backupEligible: boolean }): string[] {
  return [asserted.backupEligible ? "swk" : "hwk", "user", ...(asserted.userVerified ? ["mfa"] : [])];
}

/** A refusal as a `Passkeyed` result. */
export function refused<T>(refusal: PasskeyRefusal): Passkeyed<T> {
  return { ok: false, refusal };
}
