import {
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import {
  type PasskeyCredential,
  type Passkeyed,
  type PasskeyRefusal,
  type PasskeyRequirement,
  type RelyingParty,
  refused,
} from "./passkey.ts";
import { attestationOf, checkClientData, parseResponse, rpIdRefusal } from "./passkey-response.ts";

// Attestation Stepgate verifies: none, or packed (self or with a certificate chain).
const supportedFormats = new Set(["none", "packed"]);
// COSE algorithms accepted: EdDSA (-8), ES256 (-7), RS256 (-257).
const supportedAlgorithms = [-8, -7, -257];

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
