import type { Jwk } from "@stepgate/grant";
import type { SigningKeys } from "./signing-keys.ts";

/** The public keys grants may be signed with (RFC 7517 JWKS `keys`): next, current and previous; never fails. */
export type GetJwks = () => Jwk[];

export interface GetJwksDeps {
  signingKeys: Pick<SigningKeys, "published">;
}

export function createGetJwks({ signingKeys }: GetJwksDeps): GetJwks {
  return () => signingKeys.published();
}
