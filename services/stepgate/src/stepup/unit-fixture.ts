import { generateKeyPairSync, randomBytes } from "node:crypto";
import type { AuditRecord } from "../audit/audit-log.ts";
import { createFingerprint } from "../crypto/fingerprint.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import type { Enrolled } from "../domain/factor.ts";
import type { MethodName } from "../domain/method.ts";
import { createAssertPasskey } from "../factors/assert-passkey.ts";
import type { Checked, CheckProof, Proof } from "../factors/check-proof.ts";
import { createGrantIssuer } from "../grants/grant-issuer.ts";
import type { SigningKeys } from "../grants/signing-keys.ts";
import { createAttempts } from "../limits/attempts.ts";
import { parsePolicy } from "../policy/policy.ts";
import { createMemoryHotStore } from "../store/hot/memory-hot-store.ts";
import { hotStoresOver } from "../store/stores.ts";
import { createStepUp } from "./step-up.ts";
import { createVerify } from "./verify.ts";

/** A small policy for unit tests: 3 attempts per challenge, lockout after 4 failures. */
export const unitPolicy = parsePolicy(`
levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  recovery_code: { acr: aal2, amr: [otp] }
challenge: { ttl: 60, max_attempts: 3 }
lockout: { max_failures: 4, duration: 30 }
grant_ttl: 120
actions:
  payments.transfer: { acr: aal2, max_age: 300, methods: [totp] }
  secrets.read: { acr: aal2, max_age: 0 }
  admin.root: { acr: aal3, max_age: 60 }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`);

/** An Ed25519 key pair as the signing keys, made in memory: one current key that never rotates. */
export function memorySigningKeys(): Pick<SigningKeys, "signingKey" | "published" | "isPublished"> {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const x = publicKey.export({ format: "jwk" }).x as string;
  const jwk = { kty: "OKP", crv: "Ed25519", x, kid: "unit", alg: "EdDSA", use: "sig" } as const;
  return {
    signingKey: () => ({ kid: "unit", privateKey }),
    published: () => [jwk],
    isPublished: (kid) => kid === "unit",
  };
}

/**
 * StepUp and Verify over the in-memory hot store, with a movable clock, a scripted proof check
 * (each call answers with the next scripted result, "ok" when none is left) and a recorded audit.
 */
export function unitStepgate(options: { enrolled?: MethodName[] } = {}) {
  let now = 1_800_000_000_000;
  const clock = () => now;
  const hot = createMemoryHotStore(clock);
  const stores = hotStoresOver(hot);
  const audited: AuditRecord[] = [];
  const audit = {
    record: async (r: AuditRecord) => {
      audited.push(r);
    },
  };
  const proofs: Proof[] = [];
  const lockouts: string[] = [];
  const script: Checked[] = [];
  const checkProof: CheckProof = async (proof) => {
    proofs.push(proof);
    return script.shift() ?? { result: "ok", factorId: "unit-factor", remaining: 0 };
  };
  const enrolled: Enrolled = {
    methods: new Set(options.enrolled ?? ["totp"]),
    totp: [],
    passkeys: [],
    version: 1,
  };
  const policy = unitPolicy;
  const challengeKey = randomBytes(32);
  const issueGrant = createGrantIssuer({
    signingKeys: memorySigningKeys(),
    issuer: "stepgate",
    clock,
    replicaId: "unit",
  });
  const keyRing = parseKeyRing(`unit:${randomBytes(32).toString("base64")}`);
  const common = { policy, clock, audit, issueGrant, replicaId: "unit" };
  return {
    hot,
    stores,
    audited,
    proofs,
    /** The callers whose wrong answers started a lockout, in order. */
    lockouts,
    /** The results the next proof checks answer with, in order. */
    script,
    advance: (ms: number) => {
      now += ms;
    },
    now: clock,
    stepUp: createStepUp({
      ...common,
      sessions: stores.sessions,
      factors: { enrolled: async () => enrolled },
      challenges: stores.challenges,
      challengeKey,
      facts: { seen: async () => new Map() },
      fingerprint: createFingerprint(challengeKey),
    }),
    verify: createVerify({
      ...common,
      challenges: stores.challenges,
      verifyResults: stores.verifyResults,
      attempts: createAttempts({ counters: stores.attempts, policy }),
      checkProof,
      sessions: stores.sessions,
      fingerprint: createFingerprint(randomBytes(32)),
      keyRing,
      metrics: { lockoutStarted: (caller: string) => lockouts.push(caller) },
      assertPasskey: createAssertPasskey({ policy, challengeKey }),
      flagCloned: async () => {},
      facts: { record: async () => {} },
    }),
  };
}
