import { hostname } from "node:os";
import { z } from "zod";
import { ConfigError, describeIssues } from "./config-error.ts";
import { type RedisTarget, redisTargetOf } from "./redis-target.ts";

const port = z.coerce.number().int().min(0).max(65535);
const ms = z.coerce
  .number()
  .int()
  .min(0)
  .max(24 * 3600 * 1000);

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
  STEPGATE_MAX_CONNECTION_AGE_MS: ms.default(30_000),
  STEPGATE_MAX_CONNECTION_AGE_GRACE_MS: ms.default(10_000),
  STEPGATE_KEEPALIVE_TIME_MS: ms.min(1000).default(60_000),
  STEPGATE_KEEPALIVE_TIMEOUT_MS: ms.min(1000).default(20_000),
  STEPGATE_MIN_PING_INTERVAL_MS: ms.default(10_000),
  STEPGATE_MAX_PING_STRIKES: z.coerce.number().int().min(0).max(100).default(2),
  STEPGATE_THROTTLE_REFUSALS: z.coerce.number().int().min(0).max(100_000).default(32),
  STEPGATE_THROTTLE_PAUSE_MS: z.coerce.number().int().min(1).max(60_000).default(100),
  STEPGATE_THROTTLE_MAX_PAUSE_MS: z.coerce.number().int().min(1).max(600_000).default(2000),
  STEPGATE_MAX_CONNECTIONS: z.coerce.number().int().min(0).max(1_000_000).default(5000),
  STEPGATE_REQUEST_TIMEOUT_MS: ms.min(100).default(5000),
  STEPGATE_MAX_PENDING_REQUESTS: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  STEPGATE_DRAIN_DELAY_MS: ms.default(1000),
  STEPGATE_SHUTDOWN_GRACE_MS: ms.min(100).default(10_000),
  STEPGATE_AUDIT_CLAIM_AFTER_MS: ms.min(100).default(30_000),
  STEPGATE_FAULT_INJECTION: z.enum(["0", "1", "false", "true"]).default("0"),
  STEPGATE_FAULT_UNAVAILABLE: z.enum(["0", "1", "false", "true"]).default("0"),
  STEPGATE_BENCH: z.enum(["0", "1", "false", "true"]).default("0"),
  STEPGATE_POSTGRES_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(2000),
  STEPGATE_REDIS_TIMEOUT_MS: z.coerce.number().int().min(20).max(60_000).default(500),
  STEPGATE_BREAKER_FAILURES: z.coerce.number().int().min(1).max(100).default(3),
  STEPGATE_BREAKER_HALF_OPEN_MS: z.coerce.number().int().min(50).max(600_000).default(1000),
  STEPGATE_FACTOR_CACHE_TTL_S: z.coerce
    .number()
    .int()
    .min(60)
    .max(30 * 86_400)
    .default(86_400),
  STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S: z.coerce
    .number()
    .int()
    .min(1)
    .max(30 * 86_400)
    .default(900),
  STEPGATE_SIGNING_KEY_ROTATE_EVERY_S: z.coerce
    .number()
    .int()
    .min(0)
    .max(3650 * 86_400)
    .default(30 * 86_400),
  STEPGATE_SIGNING_KEY_REFRESH_MS: z.coerce.number().int().min(100).max(600_000).optional(),
  STEPGATE_ADMISSION_INITIAL_LIMIT: z.coerce.number().int().min(1).max(10_000).default(32),
  STEPGATE_ADMISSION_MIN_LIMIT: z.coerce.number().int().min(1).max(10_000).default(8),
  STEPGATE_ADMISSION_MAX_LIMIT: z.coerce.number().int().min(1).max(10_000).default(1000),
  STEPGATE_ADMISSION_MAX_QUEUE: z.coerce.number().int().min(0).max(100_000).default(1000),
  STEPGATE_ADMISSION_MAX_WAIT_MS: z.coerce.number().int().min(1).max(60_000).default(2000),
  STEPGATE_EVENT_LOOP_SATURATED: z.coerce.number().min(0.5).max(1).default(0.95),
  STEPGATE_EVENT_LOOP_RESERVE: z.coerce.number().min(0).max(0.5).default(0.2),
  STEPGATE_TLS_CERT_FILE: z.string().min(1).optional(),
  STEPGATE_TLS_KEY_FILE: z.string().min(1).optional(),
  STEPGATE_TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  STEPGATE_TLS_RELOAD_MS: z.coerce.number().int().min(100).max(3_600_000).default(10_000),
  STEPGATE_TLS_REFUSAL_LOG_INTERVAL_MS: ms.min(100).default(60_000),
  STEPGATE_INSECURE_DEV: z.enum(["0", "1", "false", "true"]).default("0"),
  STEPGATE_SUBJECT_JWKS_TIMEOUT_MS: z.coerce.number().int().min(100).max(30_000).default(2000),
  STEPGATE_SUBJECT_JWKS_MAX_AGE_MS: z.coerce.number().int().min(1000).max(86_400_000).default(600_000),
  STEPGATE_SUBJECT_JWKS_COOLDOWN_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
  STEPGATE_FLEET_SIZE: z.coerce.number().int().min(1).max(1000).default(1),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(100).default(10),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).optional(),
  REDIS_SENTINELS: z.string().min(1).max(4096).optional(),
  REDIS_SENTINEL_MASTER: z.string().min(1).max(256).default("stepgate"),
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  REDIS_SENTINEL_USERNAME: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_TLS: z.enum(["0", "1", "false", "true"]).default("0"),
  REDIS_PREFIX: z.string().min(1).max(64).default("stepgate:"),
  STEPGATE_RESEAL_BATCH_SIZE: z.coerce.number().int().min(1).max(10_000).default(500),
  STEPGATE_RESEAL_PAUSE_MS: ms.max(60_000).default(0),
});

/** The service's deployment settings, from the environment. */
export interface Config {
  host: string;
  port: number;
  policyFile: string;
  encryptionKeys: string;
  encryptionKeyId: string | undefined;
  issuer: string;
  /** Names the replica in logs, audit events and the `stepgate-replica` trailer of every call. */
  replicaId: string;
  logLevel: string;
  /** How often the stores are probed for health, in ms. */
  healthIntervalMs: number;
  databaseUrl: string;
  /** Connections in the PostgreSQL pool. */
  databasePoolSize: number;
  /** Hot state in Redis (one server, or the primary Sentinel names) when set; in PostgreSQL otherwise. */
  redis: RedisTarget | undefined;
  /** Prepended to every Redis key. */
  redisPrefix: string;
  /** How callers connect and prove who they are. */
  transport: TransportSettings;
  /** How the trusted identity providers' published keys (policy `subject_proof.issuers`) are fetched. */
  subjectJwks: {
    /** The longest one JWKS fetch may take, in ms. */
    timeoutMs: number;
    /** Fetched keys are used this long before they are fetched again, in ms. */
    maxAgeMs: number;
    /** A token with an unknown key id refetches the JWKS at most this often, in ms. */
    cooldownMs: number;
  };
  connections: ConnectionSettings;
  /** How calls to PostgreSQL and Redis are bounded, and when a dependency counts as down. */
  dependencies: DependencySettings;
  /** Wait after reporting NOT_SERVING before refusing new calls, so balancers notice, in ms. */
  drainDelayMs: number;
  /** How long calls in flight may take to finish at shutdown, in ms. */
  shutdownGraceMs: number;
  /**
   * Audit events a replica took from the Redis outbox and has not stored for this long (it died)
   * are taken over by another replica, in ms.
   */
  auditClaimAfterMs: number;
  /** Install the test faults: honour the `stepgate-fault` request header (tests only). */
  faultInjection: boolean;
  /**
   * STEPGATE_FAULT_UNAVAILABLE=1, honoured only with STEPGATE_FAULT_INJECTION=1 (false otherwise):
   * every StepUpService and FactorService call fails UNAVAILABLE as if the stores were down
   * (server/fault-injection.ts), while health still reports SERVING (tests only).
   */
  faultUnavailable: boolean;
  /** Serve stepgate.bench.v1.BenchService, the no-op baseline (benchmarks only). */
  bench: boolean;
  /** Admission control and rate limiting of this replica (traffic/). */
  traffic: TrafficSettings;
  /** When grant-signing keys rotate and how soon replicas learn of it (grants/signing-key-rotation.ts). */
  signingKeys: SigningKeySettings;
}

/** Rotation of the grant-signing keys. */
export interface SigningKeySettings {
  /**
   * How long a new key is published in the JWKS before it signs, in ms (STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S,
   * default 900 s): longer than verifiers take to refetch the key set (`maxKeySetAgeMs`, default 600 s).
   */
  publishLeadMs: number;
  /** A key that has signed this long gets a successor, in ms (STEPGATE_SIGNING_KEY_ROTATE_EVERY_S, default 30 days); 0: only on command. */
  rotateEveryMs: number;
  /** How often each replica reads the keys again, in ms (STEPGATE_SIGNING_KEY_REFRESH_MS); default a quarter of the lead, at most 30 s. */
  refreshMs: number;
}

/** How one replica admits calls when saturated, and counts rate limits when it counts alone. */
export interface TrafficSettings {
  /** Calls in flight allowed before any latency was seen; the limit then adapts. */
  initialLimit: number;
  /** The adaptive limit never falls below this many calls in flight... */
  minLimit: number;
  /** ...nor rises above this many. */
  maxLimit: number;
  /** Calls that may wait for a slot, all priorities together; past it the lowest are shed. */
  maxQueue: number;
  /** The longest a critical call waits for a slot, in ms; each lower priority waits half as long. */
  maxWaitMs: number;
  /** Event-loop utilization (0.5 to 1) from which the replica counts as saturated. */
  eventLoopSaturatedAt: number;
  /** Share of the event loop (0 to 0.5) normal and low calls leave free for critical and high ones. */
  eventLoopReserve: number;
  /** Replicas in the fleet: while Redis is unreachable each counts rate limits alone with 1/this of each. */
  fleetSize: number;
}

/** Bounds and circuit breakers of the stores (store/dependency.ts). */
export interface DependencySettings {
  /** The longest one PostgreSQL statement or connection attempt may take, in ms. */
  postgresTimeoutMs: number;
  /** The longest one Redis command may take, in ms. */
  redisTimeoutMs: number;
  /** Consecutive failures (refused, reset, timed out) that open a dependency's circuit. */
  breakerFailures: number;
  /** How long an open circuit refuses calls before a trial call, in ms. */
  breakerHalfOpenMs: number;
  /** How long a subject's sealed factors stay cached in Redis for StepUp while PostgreSQL is down, in ms. */
  factorCacheTtlMs: number;
}

/**
 * Mutual TLS (STEPGATE_TLS_*): the caller is named by its client certificate, mapped through the
 * policy's `callers.<name>.peers`. Insecure development mode (STEPGATE_INSECURE_DEV=1): plaintext,
 * and the caller is whatever the `stepgate-caller` header says; for `pnpm dev` and tests only.
 */
export type TransportSettings =
  | {
      kind: "mtls";
      /** The replica's certificate chain (PEM). */
      certFile: string;
      /** Its private key (PEM). */
      keyFile: string;
      /** The CA bundle (PEM) client certificates must chain to. */
      clientCaFile: string;
      /** How often the three files are read again, in ms; rotated files apply without a restart. */
      reloadMs: number;
      /** Refused TLS handshakes are logged at most once per reason per this many ms (then counted). */
      refusalLogIntervalMs: number;
    }
  | { kind: "insecure-dev" };

/** HTTP/2 connection management (grpc core's channel arguments of the same names). */
export interface ConnectionSettings {
  /** `grpc.max_connection_age_ms`: connections are closed (GOAWAY) after this many ms, so clients rebalance. 0: never. */
  maxConnectionAgeMs: number;
  /** `grpc.max_connection_age_grace_ms`: how long calls on an aged connection may still run, in ms. */
  maxConnectionAgeGraceMs: number;
  /** `grpc.keepalive_time_ms`: the server pings idle clients this often (ms) to find dead connections. */
  keepaliveTimeMs: number;
  /** `grpc.keepalive_timeout_ms`: a ping unanswered this long (ms) closes the connection. */
  keepaliveTimeoutMs: number;
  /** `grpc.http2.min_ping_interval_without_data_ms`: pings closer than this (ms) are strikes. 0: no policing. */
  minPingIntervalMs: number;
  /** `grpc.http2.max_ping_strikes`: strikes tolerated before GOAWAY ENHANCE_YOUR_CALM. */
  maxPingStrikes: number;
  /**
   * A connection with this many refused calls (shed or rate-limited) within 100 ms is told to open
   * no new stream for `throttlePauseMs`, doubling while it goes on, up to `throttleMaxPauseMs`
   * (server/connection-throttle.ts). 0: never.
   */
  throttleRefusals: number;
  throttlePauseMs: number;
  throttleMaxPauseMs: number;
  /** Connections held at once (`net.Server.maxConnections`); further ones are closed as they come. 0: no limit. */
  maxConnections: number;
  /** A call whose request has not fully arrived this many ms after its headers is ended. */
  requestTimeoutMs: number;
  /** Calls that may wait for their request at once; past it the one waiting longest is ended. */
  maxPendingRequests: number;
}

/** What the re-seal job (`pnpm reseal`, keys/reseal.ts) reads: the stores, the key ring and its pace. */
export interface ResealConfig {
  databaseUrl: string;
  /** The hot state's Redis, when the fleet uses one. */
  redis: RedisTarget | undefined;
  /** Prepended to every Redis key. */
  redisPrefix: string;
  encryptionKeys: string;
  /** The key every sealed value is moved to (default: the first in the ring). */
  encryptionKeyId: string | undefined;
  /** The longest one PostgreSQL statement may take, in ms. */
  postgresTimeoutMs: number;
  /** The longest one Redis command may take, in ms. */
  redisTimeoutMs: number;
  /** Rows re-sealed per batch (STEPGATE_RESEAL_BATCH_SIZE, default 500). */
  batchSize: number;
  /** Pause after each batch, in ms, to spread the load on PostgreSQL (STEPGATE_RESEAL_PAUSE_MS, default 0). */
  pauseMs: number;
}

const resealSchema = envSchema.pick({
  DATABASE_URL: true,
  REDIS_URL: true,
  REDIS_SENTINELS: true,
  REDIS_SENTINEL_MASTER: true,
  REDIS_USERNAME: true,
  REDIS_PASSWORD: true,
  REDIS_SENTINEL_USERNAME: true,
  REDIS_SENTINEL_PASSWORD: true,
  REDIS_TLS: true,
  REDIS_PREFIX: true,
  STEPGATE_ENCRYPTION_KEYS: true,
  STEPGATE_ENCRYPTION_KEY_ID: true,
  STEPGATE_POSTGRES_TIMEOUT_MS: true,
  STEPGATE_REDIS_TIMEOUT_MS: true,
  STEPGATE_RESEAL_BATCH_SIZE: true,
  STEPGATE_RESEAL_PAUSE_MS: true,
});

/** `env` without its empty values, validated; a ConfigError names every bad key. */
function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const present = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
  const parsed = schema.safeParse(present);
  // Values are left out of the message: some of them are secrets.
  if (!parsed.success) throw new ConfigError(describeIssues("environment", parsed.error.issues));
  return parsed.data;
}

/** Reads the re-seal job's settings (the replicas' own keys, no policy file needed); throws a ConfigError naming every bad key. */
export function loadResealConfig(env: NodeJS.ProcessEnv): ResealConfig {
  const e = parseEnv(resealSchema, env);
  return {
    databaseUrl: e.DATABASE_URL,
    redis: redisTargetOf(e),
    redisPrefix: e.REDIS_PREFIX,
    encryptionKeys: e.STEPGATE_ENCRYPTION_KEYS,
    encryptionKeyId: e.STEPGATE_ENCRYPTION_KEY_ID,
    postgresTimeoutMs: e.STEPGATE_POSTGRES_TIMEOUT_MS,
    redisTimeoutMs: e.STEPGATE_REDIS_TIMEOUT_MS,
    batchSize: e.STEPGATE_RESEAL_BATCH_SIZE,
    pauseMs: e.STEPGATE_RESEAL_PAUSE_MS,
  };
}

/** Reads and validates the environment; throws a ConfigError naming every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  const e = parseEnv(envSchema, env);
  return {
    host: e.STEPGATE_HOST,
    port: e.STEPGATE_PORT,
    policyFile: e.STEPGATE_POLICY_FILE,
    encryptionKeys: e.STEPGATE_ENCRYPTION_KEYS,
    encryptionKeyId: e.STEPGATE_ENCRYPTION_KEY_ID,
    issuer: e.STEPGATE_ISSUER,
    replicaId: e.STEPGATE_REPLICA_ID ?? `${hostname()}-${process.pid}`,
    logLevel: e.STEPGATE_LOG_LEVEL,
    healthIntervalMs: e.STEPGATE_HEALTH_INTERVAL_MS,
    databaseUrl: e.DATABASE_URL,
    databasePoolSize: e.DATABASE_POOL_SIZE,
    redis: redisTargetOf(e),
    redisPrefix: e.REDIS_PREFIX,
    transport: transportOf(e),
    subjectJwks: {
      timeoutMs: e.STEPGATE_SUBJECT_JWKS_TIMEOUT_MS,
      maxAgeMs: e.STEPGATE_SUBJECT_JWKS_MAX_AGE_MS,
      cooldownMs: e.STEPGATE_SUBJECT_JWKS_COOLDOWN_MS,
    },
    connections: {
      maxConnectionAgeMs: e.STEPGATE_MAX_CONNECTION_AGE_MS,
      maxConnectionAgeGraceMs: e.STEPGATE_MAX_CONNECTION_AGE_GRACE_MS,
      keepaliveTimeMs: e.STEPGATE_KEEPALIVE_TIME_MS,
      keepaliveTimeoutMs: e.STEPGATE_KEEPALIVE_TIMEOUT_MS,
      minPingIntervalMs: e.STEPGATE_MIN_PING_INTERVAL_MS,
      maxPingStrikes: e.STEPGATE_MAX_PING_STRIKES,
      throttleRefusals: e.STEPGATE_THROTTLE_REFUSALS,
      throttlePauseMs: e.STEPGATE_THROTTLE_PAUSE_MS,
      throttleMaxPauseMs: e.STEPGATE_THROTTLE_MAX_PAUSE_MS,
      maxConnections: e.STEPGATE_MAX_CONNECTIONS,
      requestTimeoutMs: e.STEPGATE_REQUEST_TIMEOUT_MS,
      maxPendingRequests: e.STEPGATE_MAX_PENDING_REQUESTS,
    },
    dependencies: {
      postgresTimeoutMs: e.STEPGATE_POSTGRES_TIMEOUT_MS,
      redisTimeoutMs: e.STEPGATE_REDIS_TIMEOUT_MS,
      breakerFailures: e.STEPGATE_BREAKER_FAILURES,
      breakerHalfOpenMs: e.STEPGATE_BREAKER_HALF_OPEN_MS,
      factorCacheTtlMs: e.STEPGATE_FACTOR_CACHE_TTL_S * 1000,
    },
    drainDelayMs: e.STEPGATE_DRAIN_DELAY_MS,
    shutdownGraceMs: e.STEPGATE_SHUTDOWN_GRACE_MS,
    auditClaimAfterMs: e.STEPGATE_AUDIT_CLAIM_AFTER_MS,
    faultInjection: isOn(e.STEPGATE_FAULT_INJECTION),
    faultUnavailable: isOn(e.STEPGATE_FAULT_INJECTION) && isOn(e.STEPGATE_FAULT_UNAVAILABLE),
    bench: isOn(e.STEPGATE_BENCH),
    traffic: {
      initialLimit: e.STEPGATE_ADMISSION_INITIAL_LIMIT,
      minLimit: Math.min(e.STEPGATE_ADMISSION_MIN_LIMIT, e.STEPGATE_ADMISSION_MAX_LIMIT),
      maxLimit: e.STEPGATE_ADMISSION_MAX_LIMIT,
      maxQueue: e.STEPGATE_ADMISSION_MAX_QUEUE,
      maxWaitMs: e.STEPGATE_ADMISSION_MAX_WAIT_MS,
      eventLoopSaturatedAt: e.STEPGATE_EVENT_LOOP_SATURATED,
      eventLoopReserve: e.STEPGATE_EVENT_LOOP_RESERVE,
      fleetSize: e.STEPGATE_FLEET_SIZE,
    },
    signingKeys: {
      publishLeadMs: e.STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S * 1000,
      rotateEveryMs: e.STEPGATE_SIGNING_KEY_ROTATE_EVERY_S * 1000,
      refreshMs:
        e.STEPGATE_SIGNING_KEY_REFRESH_MS ??
        Math.max(100, Math.min((e.STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S * 1000) / 4, 30_000)),
    },
  };
}

const tlsKeys = ["STEPGATE_TLS_CERT_FILE", "STEPGATE_TLS_KEY_FILE", "STEPGATE_TLS_CLIENT_CA_FILE"] as const;

/** Mutual TLS when its three files are named, insecure development mode when asked for; else a ConfigError. */
function transportOf(e: z.infer<typeof envSchema>): TransportSettings {
  const named = tlsKeys.filter((key) => e[key] !== undefined);
  if (isOn(e.STEPGATE_INSECURE_DEV)) {
    if (named.length > 0)
      throw new ConfigError(`STEPGATE_INSECURE_DEV=1 cannot be combined with ${named.join(", ")}`);
    return { kind: "insecure-dev" };
  }
  const [certFile, keyFile, clientCaFile] = [
    e.STEPGATE_TLS_CERT_FILE,
    e.STEPGATE_TLS_KEY_FILE,
    e.STEPGATE_TLS_CLIENT_CA_FILE,
  ];
  if (certFile === undefined || keyFile === undefined || clientCaFile === undefined) {
    const missing = tlsKeys.filter((key) => e[key] === undefined);
    throw new ConfigError(
      `${missing.join(", ")}: required for mutual TLS (or set STEPGATE_INSECURE_DEV=1 to serve plaintext and trust the stepgate-caller header, for development only)`,
    );
  }
  const refusalLogIntervalMs = e.STEPGATE_TLS_REFUSAL_LOG_INTERVAL_MS;
  return {
    kind: "mtls",
    certFile,
    keyFile,
    clientCaFile,
    reloadMs: e.STEPGATE_TLS_RELOAD_MS,
    refusalLogIntervalMs,
  };
}

const isOn = (flag: "0" | "1" | "false" | "true") => flag === "1" || flag === "true";
