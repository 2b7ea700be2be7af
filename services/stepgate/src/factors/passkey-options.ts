import { createHmac } from "node:crypto";
import { generateAuthenticationOptions, generateRegistrationOptions } from "@simplewebauthn/server";
import type { PasskeyRecord, PasskeyRequirement, RelyingParty } from "../domain/passkey.ts";
import { type ChallengeBinding, passkeyChallenge } from "./passkey.ts";

// COSE algorithms offered at registration, preferred first: EdDSA (-8), ES256 (-7), RS256 (-257).
const offeredAlgorithms = [-8, -7, -257];

/** What the creation options of one enrolment are made of. */
export interface CreationRequest {
  relyingParty: RelyingParty;
  /** The fleet's passkey challenge key (32 bytes): derives the challenge and the user handle. */
  key: Uint8Array;
  binding: ChallengeBinding;
  userName: string;
  displayName: string;
  /** The subject's credentials at this relying party: the browser refuses to register one twice. */
  exclude: { id: string; transports: string[] }[];
  /** How long the browser waits for the user, in ms. */
  timeoutMs: number;
  /** Ask for the authenticator's attestation ("direct"), for policies that check AAGUIDs. */
  attestation: boolean;
}

/**
 * The PublicKeyCredentialCreationOptionsJSON (WebAuthn Level 3) for one enrolment, as JSON text.
 * The user handle is a keyed hash of the subject, so authenticators never store the subject itself.
 */
export async function creationOptionsJson(request: CreationRequest): Promise<string> {
  const { relyingParty, key, binding } = request;
  const options = await generateRegistrationOptions({
    rpName: relyingParty.name,
    rpID: relyingParty.id,
    userName: request.userName,
    userDisplayName: request.displayName,
    userID: createHmac("sha256", key).update(`user handle:${binding.subject}`).digest(),
    challenge: Buffer.from(passkeyChallenge(key, binding), "base64url"),
    timeout: request.timeoutMs,
    attestationType: request.attestation ? "direct" : "none",
    excludeCredentials: request.exclude,
    authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
    supportedAlgorithmIDs: offeredAlgorithms,
  });
  return JSON.stringify(options);
}

/**
 * The PublicKeyCredentialRequestOptionsJSON for a challenge, as JSON text: the passkeys that may
 * answer as allowCredentials, UV "required" where the action demands it ("preferred" otherwise),
 * and the challenge derived from the Stepgate challenge (`passkeyChallenge`).
 */
export async function requestOptionsJson(request: {
  relyingParty: RelyingParty;
  key: Uint8Array;
  binding: ChallengeBinding;
  passkeys: readonly PasskeyRecord[];
  requirement: PasskeyRequirement;
  timeoutMs: number;
}): Promise<string> {
  const options = await generateAuthenticationOptions({
    rpID: request.relyingParty.id,
    allowCredentials: request.passkeys.map((p) => ({ id: p.credentialId, transports: p.transports })),
    challenge: Buffer.from(passkeyChallenge(request.key, request.binding), "base64url"),
    timeout: request.timeoutMs,
    userVerification: request.requirement.userVerification ? "required" : "preferred",
  });
  return JSON.stringify(options);
}

/** The subject's passkeys that may answer for the relying party under `requirement`. */
export function usablePasskeys(
  passkeys: readonly PasskeyRecord[],
  relyingParty: RelyingParty,
  requirement: PasskeyRequirement,
): PasskeyRecord[] {
  const allowed = requirement.aaguids ?? [];
  return passkeys.filter(
    (p) =>
      p.rpId === relyingParty.id &&
      !(requirement.deviceBound && p.backupEligible) &&
      (allowed.length === 0 || allowed.includes(p.aaguid)),
  );
}
