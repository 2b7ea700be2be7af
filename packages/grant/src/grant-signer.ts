import { type KeyObject, sign } from "node:crypto";
import { type GrantClaims, grantType } from "./grant-claims.ts";

export interface GrantSigner {
  readonly kid: string;
  // Returns a compact JWS: base64url header, payload and Ed25519 signature, without padding.
  sign(claims: GrantClaims): string;
}

export function createGrantSigner(key: { kid: string; privateKey: KeyObject }): GrantSigner {
  const { kid, privateKey } = key;
  if (privateKey.type !== "private" || privateKey.asymmetricKeyType !== "ed25519") {
    throw new Error("signing key must be an ed25519 private key");
  }
  // The header is the same for every grant of this key, so it is encoded once.
  const header = base64url(JSON.stringify({ alg: "EdDSA", typ: grantType, kid }));
  return {
    kid,
    sign(claims) {
      const input = `${header}.${base64url(JSON.stringify(claims))}`;
      return `${input}.${sign(null, Buffer.from(input, "latin1"), privateKey).toString("base64url")}`;
    },
  };
}

function base64url(json: string): string {
  return Buffer.from(json, "utf8").toString("base64url");
}
