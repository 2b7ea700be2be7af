import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, SignJWT } from "jose";

/** Claims of a test primary-session token; `auth_time` and `exp` in seconds since the epoch. */
export interface TokenClaims {
  sub: string;
  sid?: string;
  /** Any JSON value, to test how times from outside are read. */
  auth_time?: unknown;
  /** Default: the provider's first audience. */
  aud?: string | string[];
  /** Default: the provider's issuer. */
  iss?: string;
  /** Default: five minutes from now. Any JSON value, as `auth_time`. */
  exp?: unknown;
  /** Default: now. Any JSON value, to test how times from outside are read. */
  iat?: unknown;
}

/** An OIDC-style identity provider on loopback: a JWKS endpoint and a token signer (ES256). */
export interface TestIdentityProvider {
  issuer: string;
  /** `http://127.0.0.1:<port>/jwks`. */
  jwksUri: string;
  audience: string;
  /** JWKS requests served so far. */
  jwksRequests(): number;
  /** A signed token (an ID token's claims); `key: "rogue"` signs with a key the JWKS never held. */
  token(claims: TokenClaims, options?: { key?: "current" | "rogue" }): Promise<string>;
  /** Replaces the signing key (the JWKS then holds only the new one). */
  rotate(): Promise<void>;
  /** Makes the JWKS endpoint answer 503 (true) or serve again (false). */
  failJwks(failing: boolean): void;
  close(): Promise<void>;
}

/** Starts a provider whose `issuer` is its own URL and whose audience is `audience`. */
export async function startTestIdentityProvider(audience = "stepgate"): Promise<TestIdentityProvider> {
  const newKey = async () => {
    const pair = await generateKeyPair("ES256");
    const jwk: JWK = {
      ...(await exportJWK(pair.publicKey)),
      kid: crypto.randomUUID(),
      alg: "ES256",
      use: "sig",
    };
    return { privateKey: pair.privateKey, jwk };
  };
  let key = await newKey();
  const rogue = await newKey();
  let requests = 0;
  let failing = false;
  const server = createServer((req, res) => {
    requests += 1;
    if (req.url !== "/jwks" || failing) {
      res.writeHead(failing ? 503 : 404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [key.jwk] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const issuer = base;
  return {
    issuer,
    jwksUri: `${base}/jwks`,
    audience,
    jwksRequests: () => requests,
    async token(claims, options = {}) {
      const signer = options.key === "rogue" ? rogue : key;
      const now = Math.floor(Date.now() / 1000);
      const { iss, aud, exp, iat, ...rest } = claims;
      // Set as given, not through SignJWT's setters, which would refuse the odd values tests send.
      const payload = {
        ...rest,
        iss: iss ?? issuer,
        aud: aud ?? audience,
        iat: iat === undefined ? now : iat,
        exp: exp === undefined ? now + 300 : exp,
      };
      return new SignJWT(payload as Record<string, unknown>)
        .setProtectedHeader({ alg: "ES256", kid: signer.jwk.kid as string, typ: "JWT" })
        .sign(signer.privateKey);
    },
    async rotate() {
      key = await newKey();
    },
    failJwks(value) {
      failing = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
