import { createHash } from "node:crypto";
import { decodeAttestationObject, decodeClientDataJSON } from "@simplewebauthn/server/helpers";
import type { PasskeyRefusal, RelyingParty } from "./passkey.ts";

/** The largest WebAuthn response JSON accepted, in bytes; browsers send about 1 to 2 KiB. */
export const maxPasskeyResponseBytes = 16 * 1024;
/** The largest clientDataJSON accepted, in bytes (decoded). */
export const maxClientDataBytes = 2048;

/** The response JSON, if it is one under the size limit with the fields the ceremony needs. */
export function parseResponse<T extends { id: string; response: { clientDataJSON: string } }>(
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

/** The client data's refusal, if any: size, type, challenge and origin (a cross-origin frame included). */
export function checkClientData(
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
  // Made in a frame of another site's page (WebAuthn 5.10.1): the listed origins are top-level pages.
  if (client.crossOrigin === true) return "wrong_origin";
  return undefined;
}

/** The attestation object's format and authenticator data; undefined if it is not one. */
export function attestationOf(
  attestationObject: string,
): { format: string; authData: Uint8Array } | undefined {
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
export function rpIdRefusal(authData: Uint8Array, rpId: string): PasskeyRefusal | undefined {
  if (authData.length < minAuthenticatorDataBytes) return "malformed";
  const expected = createHash("sha256").update(rpId).digest();
  return expected.equals(authData.subarray(0, 32)) ? undefined : "wrong_rp";
}
