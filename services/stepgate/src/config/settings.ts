// Every setting of a replica and of `pnpm reseal`, declared once: its environment variable, type,
// bounds, default, unit and description. `Config` is inferred from `configSchema`, and
// docs/configuration.md is generated from it (`pnpm docs:config`; a test fails when it is stale).
import { hostname } from "node:os";
import { z } from "zod";
import { ConfigError } from "./config-error.ts";
import { redisTargetOf } from "./redis-target.ts";
import { flag, int, ms, setting, settingOf } from "./setting.ts";

/** Seconds in the environment, ms in the config (the default is in seconds too). */
const seconds = (min: number, max: number, fallback: number) =>
  int(min, max)
    .default(fallback)
    .transform((s) => s * 1000);
const day = 86_400;

/** The stores: PostgreSQL and the hot state's Redis. */
const databaseUrl = setting(z.url({ protocol: /^postgres(ql)?$/ }), {
  env: "DATABASE_URL",
  description: "PostgreSQL, `postgresql://user@host:5432/db`",
  defaultText: "(required; `pnpm dev` embeds one)",
});
const databasePoolSize = setting(int(1, 100).default(10), {
  env: "DATABASE_POOL_SIZE",
  description: "connections per replica",
});
const redis = z
  .object({
    REDIS_URL: setting(z.url({ protocol: /^rediss?$/ }).optional(), {
      env: "REDIS_URL",
      description: "`redis://host:6379` (one server); not with `REDIS_SENTINELS`",
      defaultText: "unset: hot state in PostgreSQL",
    }),
    REDIS_SENTINELS: setting(z.string().min(1).max(4096).optional(), {
      env: "REDIS_SENTINELS",
      description:
        "`host:port,host:port` (port default 26379): the primary is the one these Redis Sentinels name",
    }),
    REDIS_SENTINEL_MASTER: setting(z.string().min(1).max(256).default("stepgate"), {
      env: "REDIS_SENTINEL_MASTER",
      description: "the name the sentinels monitor the primary under",
    }),
    REDIS_USERNAME: setting(z.string().min(1).optional(), {
      env: "REDIS_USERNAME",
      description: "ACL user of the Sentinel-managed Redis servers",
    }),
    REDIS_PASSWORD: setting(z.string().min(1).optional(), {
      env: "REDIS_PASSWORD",
      description: "ACL password of the Sentinel-managed Redis servers",
    }),
    REDIS_SENTINEL_USERNAME: setting(z.string().min(1).optional(), {
      env: "REDIS_SENTINEL_USERNAME",
      description: "ACL user of the sentinels themselves",
    }),
    REDIS_SENTINEL_PASSWORD: setting(z.string().min(1).optional(), {
      env: "REDIS_SENTINEL_PASSWORD",
      description: "ACL password of the sentinels themselves",
    }),
    REDIS_TLS: setting(flag(), {
      env: "REDIS_TLS",
      description:
        "TLS to the Sentinel-managed servers and the sentinels (a `rediss://` URL does it for one server)",
    }),
  })
  // Issues, not throws: reported together with every other bad or missing variable.
  .transform((e, ctx) => {
    try {
      return redisTargetOf(e);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      ctx.addIssue({
        code: "custom",
        path: ["REDIS_SENTINELS"],
        message: error.message.replace(/^REDIS_SENTINELS: /, ""),
      });
      return z.NEVER;
    }
  });
const redisPrefix = setting(z.string().min(1).max(64).default("stepgate:"), {
  env: "REDIS_PREFIX",
  description: "key prefix, so several deployments can share one Redis",
});
const encryptionKeys = setting(z.string().min(1), {
  env: "STEPGATE_ENCRYPTION_KEYS",
  description: "key ring: `id:base64(32 bytes),id:…` (AES-256-GCM)",
  defaultText: "(required; `pnpm dev` makes one)",
});
const encryptionKeyId = setting(z.string().min(1).optional(), {
  env: "STEPGATE_ENCRYPTION_KEY_ID",
  description: "the key new secrets are sealed with; older keys still open old rows",
  defaultText: "the first key",
});
const postgresTimeoutMs = setting(int(50, 60_000).default(2000), {
  env: "STEPGATE_POSTGRES_TIMEOUT_MS",
  description: "bound on one PostgreSQL statement or connection attempt",
  unit: "ms",
});
const redisTimeoutMs = setting(int(20, 60_000).default(500), {
  env: "STEPGATE_REDIS_TIMEOUT_MS",
  description: "bound on one Redis command",
  unit: "ms",
});

const tlsFile = (env: string, description: string) =>
  setting(z.string().min(1).optional(), {
    env,
    description,
    defaultText: "(required unless insecure dev mode)",
  });
/** The three files of mutual TLS; their variables are named once, in their settings. */
const tlsFiles = {
  certFile: tlsFile("STEPGATE_TLS_CERT_FILE", "the replica's certificate chain (PEM)"),
  keyFile: tlsFile("STEPGATE_TLS_KEY_FILE", "the replica's private key (PEM)"),
  clientCaFile: tlsFile(
    "STEPGATE_TLS_CLIENT_CA_FILE",
    "CA bundle (PEM) client certificates must chain to: mutual TLS",
  ),
};
const tlsFields = Object.keys(tlsFiles) as (keyof typeof tlsFiles)[];
const tlsVariable = (field: keyof typeof tlsFiles) => settingOf(tlsFiles[field])?.env ?? field;

/** How callers connect: mutual TLS when its three files are named, insecure development mode when asked for. */
const transport = z
  .object({
    insecureDev: setting(flag(), {
      env: "STEPGATE_INSECURE_DEV",
      description: "plaintext, caller from the `stepgate-caller` header; warns at start; never in production",
      defaultText: "false (`pnpm dev`: true)",
    }),
    ...tlsFiles,
    reloadMs: setting(int(100, 3_600_000).default(10_000), {
      env: "STEPGATE_TLS_RELOAD_MS",
      description: "how often the three files are read again; a valid changed set applies to new connections",
      unit: "ms",
    }),
    refusalLogIntervalMs: setting(ms().min(100).default(60_000), {
      env: "STEPGATE_TLS_REFUSAL_LOG_INTERVAL_MS",
      description: "refused TLS handshakes are logged once per reason per this interval, then counted",
      unit: "ms",
    }),
  })
  // Issues, not throws: reported together with every other bad or missing variable.
  .transform(({ insecureDev, certFile, keyFile, clientCaFile, reloadMs, refusalLogIntervalMs }, ctx) => {
    const files = { certFile, keyFile, clientCaFile };
    const named = tlsFields.filter((f) => files[f] !== undefined);
    if (insecureDev) {
      if (named.length === 0) return { kind: "insecure-dev" as const };
      const variables = named.map(tlsVariable).join(", ");
      ctx.addIssue({
        code: "custom",
        path: ["insecureDev"],
        message: `STEPGATE_INSECURE_DEV=1 cannot be combined with ${variables}`,
      });
      return z.NEVER;
    }
    if (certFile === undefined || keyFile === undefined || clientCaFile === undefined) {
      for (const f of tlsFields.filter((f) => files[f] === undefined))
        ctx.addIssue({
          code: "custom",
          path: [f],
          message:
            "required for mutual TLS (or set STEPGATE_INSECURE_DEV=1 to serve plaintext and trust the stepgate-caller header, for development only)",
        });
      return z.NEVER;
    }
    return { kind: "mtls" as const, certFile, keyFile, clientCaFile, reloadMs, refusalLogIntervalMs };
  });

const subjectJwks = z.object({
  timeoutMs: setting(int(100, 30_000).default(2000), {
    env: "STEPGATE_SUBJECT_JWKS_TIMEOUT_MS",
    description: "bound on one fetch of a trusted issuer's JWKS",
    unit: "ms",
  }),
  maxAgeMs: setting(int(1000, 86_400_000).default(600_000), {
    env: "STEPGATE_SUBJECT_JWKS_MAX_AGE_MS",
    description: "an issuer's fetched keys are used this long before they are fetched again",
    unit: "ms",
  }),
  cooldownMs: setting(int(0, 3_600_000).default(30_000), {
    env: "STEPGATE_SUBJECT_JWKS_COOLDOWN_MS",
    description: "a token with an unknown `kid` refetches the issuer's JWKS at most this often",
    unit: "ms",
  }),
});

/** HTTP/2 connection management (grpc core's channel arguments of the same names) and flood bounds. */
const connections = z.object({
  maxConnectionAgeMs: setting(ms().default(30_000), {
    env: "STEPGATE_MAX_CONNECTION_AGE_MS",
    description: "a connection gets GOAWAY this long after it opened (±10%), so clients rebalance; 0: never",
    unit: "ms",
  }),
  maxConnectionAgeGraceMs: setting(ms().default(10_000), {
    env: "STEPGATE_MAX_CONNECTION_AGE_GRACE_MS",
    description: "calls on a connection sent GOAWAY may finish this long before it is closed",
    unit: "ms",
  }),
  keepaliveTimeMs: setting(ms().min(1000).default(60_000), {
    env: "STEPGATE_KEEPALIVE_TIME_MS",
    description:
      "the server pings idle clients this often to find dead connections (`grpc.keepalive_time_ms`)",
    unit: "ms",
  }),
  keepaliveTimeoutMs: setting(ms().min(1000).default(20_000), {
    env: "STEPGATE_KEEPALIVE_TIMEOUT_MS",
    description: "a ping unanswered this long closes the connection (`grpc.keepalive_timeout_ms`)",
    unit: "ms",
  }),
  minPingIntervalMs: setting(ms().default(10_000), {
    env: "STEPGATE_MIN_PING_INTERVAL_MS",
    description:
      "client pings closer than this are strikes (`grpc.http2.min_ping_interval_without_data_ms`); 0: no policing",
    unit: "ms",
  }),
  maxPingStrikes: setting(int(0, 100).default(2), {
    env: "STEPGATE_MAX_PING_STRIKES",
    description: "ping strikes tolerated before GOAWAY ENHANCE_YOUR_CALM (`grpc.http2.max_ping_strikes`)",
  }),
  throttleRefusals: setting(int(0, 100_000).default(32), {
    env: "STEPGATE_THROTTLE_REFUSALS",
    description: "refused calls on one connection within 100 ms that pause it (no new streams); 0: never",
  }),
  throttlePauseMs: setting(int(1, 60_000).default(100), {
    env: "STEPGATE_THROTTLE_PAUSE_MS",
    description: "a paused connection's first pause, doubling while its calls are still refused",
    unit: "ms",
  }),
  throttleMaxPauseMs: setting(int(1, 600_000).default(2000), {
    env: "STEPGATE_THROTTLE_MAX_PAUSE_MS",
    description: "the longest pause of a connection whose calls are still refused",
    unit: "ms",
  }),
  maxConnections: setting(int(0, 1_000_000).default(5000), {
    env: "STEPGATE_MAX_CONNECTIONS",
    description:
      "connections held at once (about 20 KiB each); further ones are closed as they come; 0: no cap",
  }),
  requestTimeoutMs: setting(ms().min(100).default(5000), {
    env: "STEPGATE_REQUEST_TIMEOUT_MS",
    description:
      "a call whose request has not all arrived this long after its headers gets DEADLINE_EXCEEDED",
    unit: "ms",
  }),
  maxPendingRequests: setting(int(1, 1_000_000).default(1000), {
    env: "STEPGATE_MAX_PENDING_REQUESTS",
    description:
      "calls that may wait for their request at once; past it the one waiting longest gets UNAVAILABLE",
  }),
});

/** Bounds and circuit breakers of the stores (store/dependency.ts). */
const dependencies = z.object({
  postgresTimeoutMs,
  redisTimeoutMs,
  breakerFailures: setting(int(1, 100).default(3), {
    env: "STEPGATE_BREAKER_FAILURES",
    description: "consecutive failures that open a store's circuit",
  }),
  breakerHalfOpenMs: setting(int(50, 600_000).default(1000), {
    env: "STEPGATE_BREAKER_HALF_OPEN_MS",
    description: "how long an open circuit waits before a trial call",
    unit: "ms",
  }),
  factorCacheTtlMs: setting(seconds(60, 30 * day, day), {
    env: "STEPGATE_FACTOR_CACHE_TTL_S",
    description: "how long sealed factors stay cached in Redis for StepUp while PostgreSQL is down",
    unit: "s",
  }),
});

/** Admission control and rate limiting of this replica (traffic/). */
const traffic = z
  .object({
    initialLimit: setting(int(1, 10_000).default(32), {
      env: "STEPGATE_ADMISSION_INITIAL_LIMIT",
      description: "calls in flight allowed before the adaptive limit has seen any latency",
    }),
    minLimit: setting(int(1, 10_000).default(8), {
      env: "STEPGATE_ADMISSION_MIN_LIMIT",
      description: "the adaptive concurrency limit never falls below this (nor above the maximum)",
    }),
    maxLimit: setting(int(1, 10_000).default(1000), {
      env: "STEPGATE_ADMISSION_MAX_LIMIT",
      description: "the adaptive concurrency limit never rises above this",
    }),
    maxQueue: setting(int(0, 100_000).default(1000), {
      env: "STEPGATE_ADMISSION_MAX_QUEUE",
      description: "calls that may wait for a slot; past it the lowest-priority waiting call is shed",
    }),
    maxWaitMs: setting(int(1, 60_000).default(2000), {
      env: "STEPGATE_ADMISSION_MAX_WAIT_MS",
      description: "the longest a critical call waits for a slot; each lower priority half as long",
      unit: "ms",
    }),
    eventLoopSaturatedAt: setting(z.coerce.number().min(0.5).max(1).default(0.95), {
      env: "STEPGATE_EVENT_LOOP_SATURATED",
      description: "event-loop utilization from which the limit backs off and low priority stops waiting",
    }),
    eventLoopReserve: setting(z.coerce.number().min(0).max(0.5).default(0.2), {
      env: "STEPGATE_EVENT_LOOP_RESERVE",
      description:
        "share of the event loop normal and low calls leave free while critical or high calls are about",
    }),
    fleetSize: setting(int(1, 1000).default(1), {
      env: "STEPGATE_FLEET_SIZE",
      description: "replicas in the fleet; while Redis is down each counts rate limits alone with 1/this",
    }),
  })
  .transform((t) => ({ ...t, minLimit: Math.min(t.minLimit, t.maxLimit) }));

/** When grant-signing keys rotate and how soon replicas learn of it (grants/signing-key-rotation.ts). */
const signingKeys = z
  .object({
    publishLeadMs: setting(seconds(1, 30 * day, 900), {
      env: "STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S",
      description: "a new signing key is in the JWKS this long before it signs; above verifiers' refetch",
      unit: "s",
    }),
    rotateEveryMs: setting(seconds(0, 3650 * day, 30 * day), {
      env: "STEPGATE_SIGNING_KEY_ROTATE_EVERY_S",
      description: "a key that has signed this long gets a successor; 0: only `pnpm rotate-signing-key`",
      unit: "s",
      defaultText: "2592000 (30 days)",
    }),
    refreshMs: setting(int(100, 600_000).optional(), {
      env: "STEPGATE_SIGNING_KEY_REFRESH_MS",
      description: "how often each replica reads the signing keys again",
      unit: "ms",
      defaultText: "lead / 4, at most 30000",
    }),
  })
  .transform((k) => ({
    ...k,
    refreshMs: k.refreshMs ?? Math.max(100, Math.min(k.publishLeadMs / 4, 30_000)),
  }));

/** A replica's settings. */
export const configSchema = z
  .object({
    host: setting(z.string().min(1).default("0.0.0.0"), {
      env: "STEPGATE_HOST",
      description: "where to listen (`pnpm dev`: 127.0.0.1)",
    }),
    port: setting(int(0, 65535).default(50051), { env: "STEPGATE_PORT", description: "the gRPC port" }),
    policyFile: setting(z.string().min(1), {
      env: "STEPGATE_POLICY_FILE",
      description: "the policy YAML ([policy.md](policy.md))",
      defaultText: "(required; `pnpm dev` uses the example)",
    }),
    encryptionKeys,
    encryptionKeyId,
    issuer: setting(z.string().min(1).default("stepgate"), {
      env: "STEPGATE_ISSUER",
      description: "the grants' `iss`",
    }),
    replicaId: setting(
      z
        .string()
        .min(1)
        .default(() => `${hostname()}-${process.pid}`),
      {
        env: "STEPGATE_REPLICA_ID",
        description:
          "names the replica in logs, audit events and the `stepgate-replica` trailer of every call",
        defaultText: "`<host name>-<pid>`",
      },
    ),
    logLevel: setting(
      z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
      {
        env: "STEPGATE_LOG_LEVEL",
        description: "`fatal` … `trace`, `silent`",
      },
    ),
    healthIntervalMs: setting(int(100, 60_000).default(2000), {
      env: "STEPGATE_HEALTH_INTERVAL_MS",
      description: "how often each store is probed; see [store failures](replicas-and-store-failures.md)",
      unit: "ms",
    }),
    databaseUrl,
    databasePoolSize,
    redis,
    redisPrefix,
    transport,
    subjectJwks,
    connections,
    dependencies,
    drainDelayMs: setting(ms().default(1000), {
      env: "STEPGATE_DRAIN_DELAY_MS",
      description: "wait after reporting NOT_SERVING before refusing new calls, so balancers notice",
      unit: "ms",
    }),
    shutdownGraceMs: setting(ms().min(100).default(10_000), {
      env: "STEPGATE_SHUTDOWN_GRACE_MS",
      description: "how long calls in flight may take to finish at shutdown",
      unit: "ms",
    }),
    auditClaimAfterMs: setting(ms().min(100).default(30_000), {
      env: "STEPGATE_AUDIT_CLAIM_AFTER_MS",
      description: "audit events a dead replica held in the outbox are taken over after this",
      unit: "ms",
    }),
    revocationFeed: z.object({
      pollMs: setting(ms().min(10).max(10_000).default(100), {
        env: "STEPGATE_REVOCATION_POLL_MS",
        description:
          "how often a replica reads new revocations for its feed subscribers: their added latency at most",
        unit: "ms",
      }),
      heartbeatMs: setting(ms().min(100).max(60_000).default(1000), {
        env: "STEPGATE_REVOCATION_HEARTBEAT_MS",
        description:
          "longest silence on a WatchRevocations stream: a message with no revocations says the feed is alive",
        unit: "ms",
      }),
      maxWatchers: setting(int(1, 100_000).default(2000), {
        env: "STEPGATE_MAX_REVOCATION_WATCHERS",
        description:
          "WatchRevocations streams one replica serves at once; more are refused RESOURCE_EXHAUSTED",
      }),
    }),
    faultInjection: setting(flag(), {
      env: "STEPGATE_FAULT_INJECTION",
      description: "tests only: honour the `stepgate-fault` request header (server/fault-injection.ts)",
    }),
    faultUnavailable: setting(flag(), {
      env: "STEPGATE_FAULT_UNAVAILABLE",
      description:
        "tests only, with `STEPGATE_FAULT_INJECTION`: every StepUpService and FactorService call fails UNAVAILABLE while health says SERVING",
    }),
    bench: setting(flag(), {
      env: "STEPGATE_BENCH",
      description: "benchmarks only: serve `stepgate.bench.v1.BenchService`, the no-op baseline",
    }),
    traffic,
    signingKeys,
  })
  // The unavailable fault is honoured only where faults are installed.
  .transform((c) => ({ ...c, faultUnavailable: c.faultInjection && c.faultUnavailable }));

/** What the re-seal job (`pnpm reseal`, keys/reseal.ts) reads: the stores, the key ring and its pace. */
export const resealSchema = z.object({
  databaseUrl,
  redis,
  redisPrefix,
  encryptionKeys,
  encryptionKeyId,
  postgresTimeoutMs,
  redisTimeoutMs,
  batchSize: setting(int(1, 10_000).default(500), {
    env: "STEPGATE_RESEAL_BATCH_SIZE",
    description: "`pnpm reseal` only: rows re-sealed per batch",
  }),
  pauseMs: setting(ms().max(60_000).default(0), {
    env: "STEPGATE_RESEAL_PAUSE_MS",
    description: "`pnpm reseal` only: pause after each batch, to spread the load on PostgreSQL",
    unit: "ms",
  }),
});
