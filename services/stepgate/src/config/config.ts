import { z } from "zod";
import { ConfigError, describeIssues } from "./config-error.ts";

const port = z.coerce.number().int().min(0).max(65535);

const envSchema = z.object({
  STEPGATE_HOST: z.string().min(1).default("0.0.0.0"),
  STEPGATE_PORT: port.default(50051),
  STEPGATE_POLICY_FILE: z.string().min(1),
  STEPGATE_ENCRYPTION_KEYS: z.string().min(1),
  STEPGATE_ENCRYPTION_KEY_ID: z.string().min(1).optional(),
  STEPGATE_ISSUER: z.string().min(1).default("stepgate"),
  STEPGATE_REPLICA_ID: z.string().min(1).optional(),
  STEPGATE_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  STEPGATE_HEALTH_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(2000),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_PREFIX: z.string().min(1).max(64).default("stepgate:"),
});

/** The service's deployment settings, from the environment. */
export interface Config {
  host: string;
  port: number;
  policyFile: string;
  encryptionKeys: string;
  encryptionKeyId: string | undefined;
  issuer: string;
  replicaId: string | undefined;
  logLevel: string;
  healthIntervalMs: number;
  databaseUrl: string;
  databasePoolSize: number;
  redisUrl: string | undefined;
  redisPrefix: string;
}

/** Reads and validates the environment; throws a ConfigError naming every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    // Values are left out of the message: some of them are secrets.
    throw new ConfigError(describeIssues("environment", parsed.error.issues));
  }
  const e = parsed.data;
  return {
    host: e.STEPGATE_HOST,
    port: e.STEPGATE_PORT,
    policyFile: e.STEPGATE_POLICY_FILE,
    encryptionKeys: e.STEPGATE_ENCRYPTION_KEYS,
    encryptionKeyId: e.STEPGATE_ENCRYPTION_KEY_ID,
    issuer: e.STEPGATE_ISSUER,
    replicaId: e.STEPGATE_REPLICA_ID,
    logLevel: e.STEPGATE_LOG_LEVEL,
    healthIntervalMs: e.STEPGATE_HEALTH_INTERVAL_MS,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
  };
}
