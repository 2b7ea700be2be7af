import { createPublicKey, verify } from "node:crypto";
import { createStepgateClient } from "@stepgate/client";
import type { Jwk } from "@stepgate/grant";

export interface OfflineVerifyOptions {
  target: string;
  caller: string;
  /** Distinct real grants, as the server issued them; the first warms the client (JWKS fetch). */
  tokens: string[];
  rounds: number;
  /** Verifications of already-verified grants per round. */
  cachedCalls: number;
}

/** Microseconds of this thread's CPU per operation, one entry per round. */
export interface OfflineVerifyResult {
  grants: number;
  tokenChars: number;
  rounds: number;
  rawMicros: number[];
  firstSeenMicros: number[];
  cachedMicros: number[];
}

// The client's verifier remembers up to 10,000 verified tokens (its default cache size).
const clientCacheSize = 10_000;
const slice = 250;

// New string instances, as tokens read off the wire: V8 caches a string's hash in the string itself.
const fresh = (list: string[]) => list.map((token) => Buffer.from(token).toString("latin1"));

// Microseconds of main-thread CPU, so the replicas and the stores on the other core do not count.
async function cpuMicros(run: () => void | Promise<void>): Promise<number> {
  const start = process.threadCpuUsage();
  await run();
  const used = process.threadCpuUsage(start);
  return used.user + used.system;
}

/**
 * Offline grant checks in `@stepgate/client` (verifyGrant: signature, expiry, audience, action)
 * against raw node:crypto Ed25519 verification of the same signing inputs, on this one core.
 * Rounds interleave the measures so a noisy neighbour hits them alike (as
 * packages/grant/bench/verify-rate.ts does, here down to slices of 250 grants). Each round uses a
 * new client, so its grants are first seen; then the same grants again, from the client's cache.
 */
export async function measureOfflineVerify(options: OfflineVerifyOptions): Promise<OfflineVerifyResult> {
  // All of them fit the client's cache, so the second pass is answered from it.
  const [warm, ...tokens] = options.tokens.slice(0, clientCacheSize);
  if (warm === undefined || tokens.length === 0) throw new Error("offline verify needs at least two grants");
  const expect = { action: "payments.transfer" };
  const keysClient = createStepgateClient({ target: options.target, caller: options.caller });
  const jwks = (JSON.parse((await keysClient.stepUp.getJwks({})).jwksJson) as { keys: Jwk[] }).keys;
  keysClient.close();
  const header = JSON.parse(Buffer.from(warm.slice(0, warm.indexOf(".")), "base64url").toString()) as {
    kid: string;
  };
  const jwk = jwks.find((k) => k.kid === header.kid);
  if (jwk === undefined) throw new Error("the grants' key is not in the JWKS");
  const publicKey = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: "jwk" });
  // The raw baseline gets the same bytes, already split and decoded: only the signature check is timed.
  const raw = tokens.map((token) => {
    const end = token.lastIndexOf(".");
    return {
      data: Buffer.from(token.slice(0, end)),
      signature: Buffer.from(token.slice(end + 1), "base64url"),
    };
  });
  const passes = Math.max(1, Math.ceil(options.cachedCalls / tokens.length));

  const result: OfflineVerifyResult = {
    grants: tokens.length,
    tokenChars: warm.length,
    rounds: options.rounds,
    rawMicros: [],
    firstSeenMicros: [],
    cachedMicros: [],
  };
  const round = async (record: boolean) => {
    const client = createStepgateClient({ target: options.target, caller: options.caller });
    try {
      await client.verifyGrant(warm, expect);
      // Raw and first-seen alternate in slices of a few milliseconds each, so a change in the
      // machine's speed (a busy host under this VM) weighs on both alike.
      const firstSeen = fresh(tokens);
      let rawTotal = 0;
      let firstSeenTotal = 0;
      for (let from = 0; from < tokens.length; from += slice) {
        const rawSlice = raw.slice(from, from + slice);
        const tokenSlice = firstSeen.slice(from, from + slice);
        rawTotal += await cpuMicros(() => {
          for (const { data, signature } of rawSlice) {
            if (!verify(null, data, publicKey, signature)) throw new Error("raw verify failed");
          }
        });
        firstSeenTotal += await cpuMicros(async () => {
          for (const token of tokenSlice) await client.verifyGrant(token, expect);
        });
      }
      const again = Array.from({ length: passes }, () => fresh(tokens));
      const cachedMicros =
        (await cpuMicros(async () => {
          for (const pass of again) for (const token of pass) await client.verifyGrant(token, expect);
        })) /
        (passes * tokens.length);
      if (record) {
        result.rawMicros.push(rawTotal / tokens.length);
        result.firstSeenMicros.push(firstSeenTotal / tokens.length);
        result.cachedMicros.push(cachedMicros);
      }
    } finally {
      client.close();
    }
  };
  // One round unrecorded first, so every recorded round runs optimised code.
  await round(false);
  for (let i = 0; i < options.rounds; i++) await round(true);
  return result;
}
