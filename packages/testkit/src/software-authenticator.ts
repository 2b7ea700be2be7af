import { createHash, generateKeyPairSync, type KeyObject, randomBytes, sign } from "node:crypto";
import { isoCBOR } from "@simplewebauthn/server/helpers";

/** COSE algorithms a software authenticator can make keys for (RFC 9053: ES256 -7, EdDSA -8). */
export type PasskeyAlgorithm = "ES256" | "EdDSA";

/** What the authenticator is and reports, as WebAuthn Level 3 defines the flags. */
export interface SoftwareAuthenticatorOptions {
  algorithm?: PasskeyAlgorithm;
  /** The UV flag: the authenticator checked a biometric or a PIN. Default true. */
  userVerified?: boolean;
  /** The BE flag: the credential may be synced to other devices (a synced passkey). Default false. */
  backupEligible?: boolean;
  /** The authenticator model, 16 bytes as a UUID. Default all zeros (what "none" attestation sends). */
  aaguid?: string;
}

/** The JSON a browser's `PublicKeyCredential.toJSON()` gives for `navigator.credentials.create`. */
export interface RegistrationJson {
  id: string;
  rawId: string;
  type: "public-key";
  response: { clientDataJSON: string; attestationObject: string; transports: string[] };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: "platform";
}

/** The JSON a browser's `PublicKeyCredential.toJSON()` gives for `navigator.credentials.get`. */
export interface AssertionJson {
  id: string;
  rawId: string;
  type: "public-key";
  response: { clientDataJSON: string; authenticatorData: string; signature: string; userHandle?: string };
  clientExtensionResults: Record<string, never>;
  authenticatorAttachment: "platform";
}

/** Where a ceremony runs: the relying party id, the page's origin and the challenge (base64url). */
export interface Ceremony {
  rpId: string;
  origin: string;
  challenge: string;
}

/** A WebAuthn authenticator in test code: real key pairs, real attestation and assertion objects. */
export interface SoftwareAuthenticator {
  /** The credential id (base64url) once `register` ran. */
  readonly credentialId: string;
  /** The signature counter the next assertion reports; set it lower to act as a cloned authenticator. */
  counter: number;
  /**
   * Answers `navigator.credentials.create`: a new credential, attested with `attestation`
   * ("none", or "packed" self-attestation signed by the credential's own key, WebAuthn 8.2).
   */
  register(ceremony: Ceremony, attestation?: "none" | "packed"): RegistrationJson;
  /** Answers `navigator.credentials.get` with the registered credential, raising the counter by one. */
  assert(ceremony: Ceremony, options?: { userHandle?: string }): AssertionJson;
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64url");
const sha256 = (data: Uint8Array | string) => createHash("sha256").update(data).digest();

// Authenticator data flags (WebAuthn Level 3, 6.1).
const flagBits = { up: 0x01, uv: 0x04, be: 0x08, bs: 0x10, at: 0x40 };

export function createSoftwareAuthenticator(
  options: SoftwareAuthenticatorOptions = {},
): SoftwareAuthenticator {
  const { algorithm = "ES256", userVerified = true, backupEligible = false } = options;
  const aaguid = Buffer.from(
    (options.aaguid ?? "00000000-0000-0000-0000-000000000000").replaceAll("-", ""),
    "hex",
  );
  const keys =
    algorithm === "ES256"
      ? generateKeyPairSync("ec", { namedCurve: "P-256" })
      : generateKeyPairSync("ed25519");
  const credentialIdBytes = randomBytes(32);
  const flags = (attested: boolean) =>
    flagBits.up |
    (userVerified ? flagBits.uv : 0) |
    (backupEligible ? flagBits.be | flagBits.bs : 0) |
    (attested ? flagBits.at : 0);
  const authenticator: SoftwareAuthenticator = {
    credentialId: b64url(credentialIdBytes),
    counter: 0,
    register(ceremony, attestation = "none") {
      const clientData = clientDataJson("webauthn.create", ceremony);
      const coseKey = isoCBOR.encode(coseKeyOf(keys.publicKey, algorithm));
      const idLength = Buffer.alloc(2);
      idLength.writeUInt16BE(credentialIdBytes.length);
      const authData = Buffer.concat([
        authenticatorData(ceremony.rpId, flags(true), authenticator.counter),
        aaguid,
        idLength,
        credentialIdBytes,
        coseKey,
      ]);
      const attStmt =
        attestation === "none"
          ? new Map()
          : new Map<string, number | Uint8Array>([
              ["alg", algorithm === "ES256" ? -7 : -8],
              ["sig", signWith(keys.privateKey, algorithm, Buffer.concat([authData, sha256(clientData)]))],
            ]);
      const attestationObject = isoCBOR.encode(
        new Map<string, string | Uint8Array | Map<string, number | Uint8Array>>([
          ["fmt", attestation],
          ["attStmt", attStmt],
          ["authData", authData],
        ]),
      );
      return credentialJson(authenticator.credentialId, {
        clientDataJSON: b64url(Buffer.from(clientData)),
        attestationObject: b64url(attestationObject),
        transports: ["internal"],
      });
    },
    assert(ceremony, assertOptions = {}) {
      authenticator.counter += 1;
      const clientData = clientDataJson("webauthn.get", ceremony);
      const authData = authenticatorData(ceremony.rpId, flags(false), authenticator.counter);
      const signature = signWith(keys.privateKey, algorithm, Buffer.concat([authData, sha256(clientData)]));
      return credentialJson(authenticator.credentialId, {
        clientDataJSON: b64url(Buffer.from(clientData)),
        authenticatorData: b64url(authData),
        signature: b64url(signature),
        ...(assertOptions.userHandle === undefined ? {} : { userHandle: assertOptions.userHandle }),
      });
    },
  };
  return authenticator;
}

/** A PublicKeyCredential's JSON around a ceremony's `response`, as a platform authenticator's. */
function credentialJson<R>(credentialId: string, response: R) {
  return {
    id: credentialId,
    rawId: credentialId,
    type: "public-key" as const,
    response,
    clientExtensionResults: {},
    authenticatorAttachment: "platform" as const,
  };
}

/** The client data a browser collects (WebAuthn 5.8.1), serialised as browsers do. */
function clientDataJson(type: "webauthn.create" | "webauthn.get", ceremony: Ceremony): string {
  return JSON.stringify({ type, challenge: ceremony.challenge, origin: ceremony.origin, crossOrigin: false });
}

/** rpIdHash (32 bytes), flags (1), signCount (4, big-endian): WebAuthn 6.1. */
function authenticatorData(rpId: string, flags: number, counter: number): Buffer {
  const tail = Buffer.alloc(5);
  tail.writeUInt8(flags, 0);
  tail.writeUInt32BE(counter, 1);
  return Buffer.concat([sha256(rpId), tail]);
}

/** The public key as a COSE_Key (RFC 9053): EC2 P-256 for ES256, OKP Ed25519 for EdDSA. */
function coseKeyOf(publicKey: KeyObject, algorithm: PasskeyAlgorithm): Map<number, number | Uint8Array> {
  const jwk = publicKey.export({ format: "jwk" });
  const coordinate = (value: string | undefined) => Buffer.from(value ?? "", "base64url");
  if (algorithm === "ES256") {
    return new Map<number, number | Uint8Array>([
      [1, 2],
      [3, -7],
      [-1, 1],
      [-2, coordinate(jwk.x)],
      [-3, coordinate(jwk.y)],
    ]);
  }
  return new Map<number, number | Uint8Array>([
    [1, 1],
    [3, -8],
    [-1, 6],
    [-2, coordinate(jwk.x)],
  ]);
}

/** ES256 signatures are DER (as authenticators send them); EdDSA signatures are the raw 64 bytes. */
function signWith(privateKey: KeyObject, algorithm: PasskeyAlgorithm, data: Buffer): Buffer {
  return algorithm === "ES256" ? sign("sha256", data, privateKey) : sign(null, data, privateKey);
}
