import { createHash, createHmac } from "node:crypto";
import {
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import { decodeAttestationObject, decodeClientDataJSON } from "@simplewebauthn/server/helpers";
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

/** The largest WebAuthn response JSON accepted, in bytes; browsers send about 1 to 2 KiB. */
export const maxPasskeyResponseBytes = 16 * 1024;
/** The largest clientDataJSON accepted, in bytes (decoded). */
export const maxClientDataBytes = 2048;

// Attestation Stepgate verifies: none, or packed (self or with a certificate chain).
const supportedFormats = new Set(["none", "packed"]);
// COSE algorithms accepted: EdDSA (-8), ES256 (-7), RS256 (-257).
const supportedAlgorithms = [-8, -7, -257];

/** What a WebAuthn challenge commits to: Stepgate's challenge and everything it is bound to. */
export interface ChallengeBinding {
  challengeId: string;
  subject: string;
  sessionId: string;
  action: string;
  caller: string;
}

/**
 * The WebAuthn challenge for a Stepgate challenge: HMAC-SHA256 under the fleet's key over the
 * binding's fields (length-prefixed), base64url. Any replica derives it again at Verify from the
 * challenge it stored, so an assertion made for another session, action or caller never matches.
 */
export function passkeyChallenge(key: Uint8Array, binding: ChallengeBinding): string {
  const mac = createHmac("sha256", key).update("stepgate passkey challenge v1");
  for (const part of [
    binding.challengeId,
    binding.subject,
    binding.sessionId,
    binding.action,
    binding.caller,
  ]) {
    const bytes = Buffer.from(part, "utf8");
    const length = Buffer.alloc(4);
    length.writeUInt32BE(bytes.length);
    mac.update(length).update(bytes);
  }
  return mac.digest("base64url");
}

/** A passkey enrolment's answer to check (the browser's `PublicKeyCredential.toJSON()`, as text). */
export interface EnrollmentAnswer {
  responseJson: string;
  /** The challenge the creation options carried. */
  challenge: string;
  relyingParty: RelyingParty;
  requirement: PasskeyRequirement;
}

/** What a verified enrolment yields: the credential to store, and how it was made. */
export interface Enrolled {
  credential: PasskeyCredential;
  userVerified: boolean;
  format: string;
  /** The transports the browser reported (WebAuthn AuthenticatorTransport), for allowCredentials hints. */
  transports: string[];
}

const knownTransports = new Set(["ble", "cable", "hybrid", "internal", "nfc", "smart-card", "usb"]);

/**
 * Checks a registration (WebAuthn 7.1) with @simplewebauthn/server, after Stepgate's own checks
 * that give each refusal its reason: size, client data (type, challenge, origin), RP id hash,
 * flags against `requirement`, the attestation format (none or packed) and the AAGUID list.
 */
export async function verifyEnrollment(answer: EnrollmentAnswer): Promise<Passkeyed<Enrolled>> {
  const response = parseResponse<RegistrationResponseJSON>(answer.responseJson, "attestationObject");
  if (!response) return refused("malformed");
  const client = checkClientData(response.response.clientDataJSON, "webauthn.create", answer);
  if (client) return refused(client);
  const attested = attestationOf(response.response.attestationObject);
  if (attested === undefined) return refused("malformed");
  if (!supportedFormats.has(attested.format)) return refused("attestation_unsupported");
  const rp = rpIdRefusal(attested.authData, answer.relyingParty.id);
  if (rp) return refused(rp);
  const verified = await verdictOf(() =>
    verifyRegistrationResponse({
      response,
      expectedChallenge: answer.challenge,
      expectedOrigin: [...answer.relyingParty.origins],
      expectedRPID: answer.relyingParty.id,
      requireUserVerification: false,
      supportedAlgorithmIDs: supportedAlgorithms,
    }),
  );
  if (!verified?.registrationInfo) return refused("bad_signature");
  const info = verified.registrationInfo;
  const flags = flagsOf(info.credentialDeviceType, info.userVerified);
  const unmet = unmetRequirement(answer.requirement, flags);
  if (unmet) return refused(unmet);
  const allowed = answer.requirement.aaguids ?? [];
  if (allowed.length > 0 && !allowed.includes(info.aaguid)) return refused("aaguid_not_allowed");
  return {
    ok: true,
    value: {
      credential: {
        credentialId: info.credential.id,
        publicKey: info.credential.publicKey,
        counter: info.credential.counter,
        backupEligible: flags.backupEligible,
        aaguid: info.aaguid,
        rpId: answer.relyingParty.id,
      },
      userVerified: info.userVerified,
      format: info.fmt,
      transports: (response.response.transports ?? []).filter((t) => knownTransports.has(t)),
    },
  };
}

/** A step-up's passkey answer to check. */
export interface AssertionAnswer {
  responseJson: string;
  /** `passkeyChallenge` of the challenge being answered. */
  challenge: string;
  relyingParty: RelyingParty;
  requirement: PasskeyRequirement;
  /** The subject's passkeys for this relying party. */
  credentials: readonly PasskeyCredential[];
}

/** What a verified assertion yields: which credential, its new counter, and its flags. */
export interface Asserted {
  credentialId: string;
  counter: number;
  userVerified: boolean;
  backupEligible: boolean;
}

/**
 * Checks an assertion (WebAuthn 7.2): Stepgate's reasoned checks first, then the signature with
 * @simplewebauthn/server, then the signature counter (WebAuthn 6.1.1). A counter that did not grow,
 * where either side counts, refuses with `counter_regressed`, only once the signature proved the
 * credential's key signed it.
 */
export async function verifyAssertion(answer: AssertionAnswer): Promise<Passkeyed<Asserted>> {
  const response = parseResponse<AuthenticationResponseJSON>(answer.responseJson, "authenticatorData");
  if (!response) return refused("malformed");
  const credential = answer.credentials.find((c) => c.credentialId === response.id);
  if (!credential || credential.rpId !== answer.relyingParty.id) return refused("unknown_credential");
  const client = checkClientData(response.response.clientDataJSON, "webauthn.get", answer);
  if (client) return refused(client);
  const rp = rpIdRefusal(
    Buffer.from(response.response.authenticatorData, "base64url"),
    answer.relyingParty.id,
  );
  if (rp) return refused(rp);
  const verified = await verdictOf(() =>
    verifyAuthenticationResponse({
      response,
      expectedChallenge: answer.challenge,
      expectedOrigin: [...answer.relyingParty.origins],
      expectedRPID: answer.relyingParty.id,
      requireUserVerification: false,
      // The counter is compared below, once the signature is known to be the credential's.
      credential: {
        id: credential.credentialId,
        publicKey: new Uint8Array(credential.publicKey),
        counter: 0,
      },
    }),
  );
  if (!verified) return refused("bad_signature");
  const info = verified.authenticationInfo;
  const flags = flagsOf(info.credentialDeviceType, info.userVerified);
  const unmet = unmetRequirement(answer.requirement, flags);
  if (unmet) return refused(unmet);
  const counts = info.newCounter > 0 || credential.counter > 0;
  if (counts && info.newCounter <= credential.counter) return refused("counter_regressed");
  return {
    ok: true,
    value: {
      credentialId: credential.credentialId,
      counter: info.newCounter,
      userVerified: info.userVerified,
      backupEligible: flags.backupEligible,
    },
  };
}

/**
 * RFC 8176 method references for a passkey: `hwk` for a device-bound key, `swk` for a synced one
 * (its private key leaves the device), with `user` for user presence and `mfa` when the
 * authenticator verified the user (the key and the biometric or PIN are two factors).
 */
export function passkeyAmr(asserted: Pick<Asserted, "userVerified" | "backupEligible">): string[] {
  return [asserted.backupEligible ? "swk" : "hwk", "user", ...(asserted.userVerified ? ["mfa"] : [])];
}

function refused<T>(refusal: PasskeyRefusal): Passkeyed<T> {
  return { ok: false, refusal };
}

/** The response JSON, if it is one under the size limit with the fields the ceremony needs. */
function parseResponse<T extends { id: string; response: { clientDataJSON: string } }>(
  json: string,
  field: string,
): T | undefined {
  if (Buffer.byteLength(json) > maxPasskeyResponseBytes) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  const candidate = parsed as { id?: unknown; type?: unknown; response?: Record<string, unknown> };
  const base64url = (v: unknown) => typeof v === "string" && /^[A-Za-z0-9_-]+={0,2}$/.test(v);
  if (!base64url(candidate.id) || candidate.type !== "public-key" || typeof candidate.response !== "object")
    return undefined;
  if (!base64url(candidate.response?.clientDataJSON) || !base64url(candidate.response?.[field]))
    return undefined;
  return parsed as T;
}

/** The client data's refusal, if any: size, type, challenge and origin. */
function checkClientData(
  encoded: string,
  type: "webauthn.create" | "webauthn.get",
  answer: { challenge: string; relyingParty: RelyingParty },
): PasskeyRefusal | undefined {
  if (Buffer.from(encoded, "base64url").length > maxClientDataBytes) return "malformed";
  let client: ReturnType<typeof decodeClientDataJSON>;
  try {
    client = decodeClientDataJSON(encoded);
  } catch {
    return "malformed";
  }
  if (client.type !== type) return "wrong_type";
  if (client.challenge !== answer.challenge) return "wrong_challenge";
  if (!answer.relyingParty.origins.includes(client.origin)) return "wrong_origin";
  return undefined;
}

/** The attestation object's format and authenticator data; undefined if it is not one. */
function attestationOf(attestationObject: string): { format: string; authData: Uint8Array } | undefined {
  try {
    const decoded = decodeAttestationObject(Buffer.from(attestationObject, "base64url"));
    const format: unknown = decoded.get("fmt");
    const authData: unknown = decoded.get("authData");
    return typeof format === "string" && authData instanceof Uint8Array ? { format, authData } : undefined;
  } catch {
    return undefined;
  }
}

// rpIdHash (32 bytes), flags (1) and signCount (4): the shortest authenticator data (WebAuthn 6.1).
const minAuthenticatorDataBytes = 37;

/** Why authenticator data does not belong to `rpId`: too short, or another RP id's hash first. */
function rpIdRefusal(authData: Uint8Array, rpId: string): PasskeyRefusal | undefined {
  if (authData.length < minAuthenticatorDataBytes) return "malformed";
  const expected = createHash("sha256").update(rpId).digest();
  return expected.equals(authData.subarray(0, 32)) ? undefined : "wrong_rp";
}

/** The library's verdict when it verified the response; undefined when it refused or threw. */
async function verdictOf<T extends { verified: boolean }>(verify: () => Promise<T>): Promise<T | undefined> {
  try {
    const verdict = await verify();
    return verdict.verified ? verdict : undefined;
  } catch {
    return undefined;
  }
}

/** The flags that matter for policy: UV, and BE ("multiDevice" credentials are backup-eligible). */
function flagsOf(deviceType: "singleDevice" | "multiDevice", userVerified: boolean) {
  return { userVerified, backupEligible: deviceType === "multiDevice" };
}

function unmetRequirement(
  requirement: PasskeyRequirement,
  flags: { userVerified: boolean; backupEligible: boolean },
): PasskeyRefusal | undefined {
  if (requirement.userVerification && !flags.userVerified) return "user_verification_missing";
  if (requirement.deviceBound && flags.backupEligible) return "backup_eligible";
  return undefined;
}
