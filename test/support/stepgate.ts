import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { loadConfig } from "@stepgate/server/config/config";
import { totpCode } from "@stepgate/server/factors/totp";
import { createLogger } from "@stepgate/server/log/logger";
import { type RunningServer, runServer } from "@stepgate/server/server/run";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";

/** The policy the tests run with: short limits so lockouts are reachable. */
export const testPolicy = `
levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  recovery_code: { acr: aal2, amr: [otp] }
challenge: { ttl: 60, max_attempts: 5 }
lockout: { max_failures: 8, duration: 60 }
grant_ttl: 120
actions:
  payments.transfer: { acr: aal2, max_age: 300, methods: [totp] }
  account.change_email: { acr: aal2, max_age: 600 }
  secrets.read: { acr: aal2, max_age: 0 }
  admin.root: { acr: aal3, max_age: 60 }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`;

/** The policy's `subject_proof` block trusting `idp` (a test identity provider), with `first_factor_max_age` in s. */
export function subjectProofBlock(
  idp: { issuer: string; jwksUri: string; audience: string },
  firstFactorMaxAge?: number,
): string {
  const maxAge = firstFactorMaxAge === undefined ? "" : `\n  first_factor_max_age: ${firstFactorMaxAge}`;
  return `subject_proof:
  issuers: [{ issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audiences: [${idp.audience}] }]${maxAge}
`;
}

/** A clock the test can move forward; the server and the test's TOTP codes read the same one. */
export interface TestClock {
  now(): number;
  advance(ms: number): void;
}

export interface Harness {
  port: number;
  target: string;
  clock: TestClock;
  db: TestDatabase;
  redis: TestRedisPrefix | undefined;
  /** Every log line the server wrote. */
  logs: string[];
  /** A client for the calling service `payments`. */
  client: StepgateClient;
  /** A client that names another calling service. */
  clientAs(caller: string): StepgateClient;
  /** Writes the replica's queued audit events now. */
  flushAudit(): Promise<void>;
  /** The TOTP code for `secret` at the test clock's time, `stepOffset` steps away. */
  code(secret: string, stepOffset?: number): string;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Carry hot state in Redis (default) or in PostgreSQL. */
  redis?: boolean;
  /** The PostgreSQL server to create the test's database on (default: the machine's). */
  databaseServerUrl?: string;
  /** Another Redis than the machine's (e.g. one the test kills); implies `redis`. */
  redisUrl?: string;
  policy?: string;
  /** How often the replica probes its stores for health. */
  healthIntervalMs?: number;
  /** More environment for the replica's configuration, applied last. */
  env?: Record<string, string>;
}

/** A policy file in a fresh temporary folder. */
export function writePolicy(policy = testPolicy): string {
  const dir = mkdtempSync(join(tmpdir(), "stepgate-test-"));
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, policy);
  return policyFile;
}

export const newKeyRing = () => `test1:${randomBytes(32).toString("base64")}`;

/** Starts one replica in this process on a fresh database (and Redis prefix) with a test clock. */
export async function startStepgate(options: HarnessOptions = {}): Promise<Harness> {
  const db = await createTestDatabase(options.databaseServerUrl);
  const redis = options.redis === false ? undefined : createTestRedisPrefix(options.redisUrl);
  const policyFile = writePolicy(options.policy);
  let offset = 0;
  const clock: TestClock = {
    now: () => Date.now() + offset,
    advance: (ms) => {
      offset += ms;
    },
  };
  const config = loadConfig({
    STEPGATE_HOST: "127.0.0.1",
    STEPGATE_PORT: "0",
    STEPGATE_POLICY_FILE: policyFile,
    STEPGATE_INSECURE_DEV: "1",
    STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
    STEPGATE_HEALTH_INTERVAL_MS: String(options.healthIntervalMs ?? 2000),
    STEPGATE_DRAIN_DELAY_MS: "0",
    STEPGATE_LOG_LEVEL: "debug",
    DATABASE_URL: db.url,
    DATABASE_POOL_SIZE: "8",
    ...(redis ? { REDIS_URL: options.redisUrl ?? redisUrl, REDIS_PREFIX: redis.prefix } : {}),
    ...options.env,
  });
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(String(chunk));
      done();
    },
  });
  const captured = createLogger("debug", {}, sink);
  let server: RunningServer;
  try {
    server = await runServer(config, captured, clock.now);
  } catch (error) {
    await db.drop();
    await redis?.clean();
    throw error;
  }
  const target = `127.0.0.1:${server.port}`;
  const clients: StepgateClient[] = [];
  const clientAs = (caller: string) => {
    const c = createStepgateClient({ target, caller, retry: { maxAttempts: 1 }, now: clock.now });
    clients.push(c);
    return c;
  };
  return {
    port: server.port,
    target,
    clock,
    db,
    redis,
    logs,
    client: clientAs("payments"),
    clientAs,
    flushAudit: () => server.flushAudit(),
    code: (secret, stepOffset = 0) => totpCode(secret, Math.floor(clock.now() / 1000) + stepOffset * 30),
    async close() {
      for (const c of clients) c.close();
      await server.shutdown(2000);
      await db.drop();
      await redis?.clean();
    },
  };
}
