import { createPublicKey, type KeyObject } from "node:crypto";

// A public Ed25519 key as published in Stepgate's JWKS (RFC 8037).
export interface Jwk {
  kty: "OKP";
  crv: "Ed25519";
  x: string;
  kid: string;
  alg: "EdDSA";
  use: "sig";
}

// Accepts a private key too, for convenience: only the public part `x` is copied, never `d`.
export function publicJwk(kid: string, publicKey: KeyObject): Jwk {
  if (publicKey.asymmetricKeyType !== "ed25519") throw new Error("key must be an ed25519 key");
  const key = publicKey.type === "private" ? createPublicKey(publicKey) : publicKey;
  const { x } = key.export({ format: "jwk" });
  if (typeof x !== "string") throw new Error("key must be an ed25519 key");
  return { kty: "OKP", crv: "Ed25519", x, kid, alg: "EdDSA", use: "sig" };
}

// Returns undefined for anything but an Ed25519 signing key, so one odd entry in a key set
// (another algorithm, an encryption key, a typo) cannot make the whole set unusable.
export function importJwk(jwk: unknown): KeyObject | undefined {
  if (typeof jwk !== "object" || jwk === null) return undefined;
  const { kty, crv, x, kid, alg, use } = jwk as Record<string, unknown>;
  if (kty !== "OKP" || crv !== "Ed25519" || typeof x !== "string" || typeof kid !== "string")
    return undefined;
  if ((alg !== undefined && alg !== "EdDSA") || (use !== undefined && use !== "sig")) return undefined;
  try {
    // Only the public members are passed on: a stray `d` must not turn this into a private key.
    return createPublicKey({ key: { kty, crv, x }, format: "jwk" });
  } catch {
    return undefined;
  }
}
