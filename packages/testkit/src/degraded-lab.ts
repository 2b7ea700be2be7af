import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { Redis } from "ioredis";
import pg from "pg";
import { freePort } from "./free-port.ts";
import { type OwnPostgres, startOwnPostgres } from "./own-postgres.ts";
import { type OwnRedis, startOwnRedis } from "./own-redis.ts";
import { type ReplicaProcess, replicaProcess } from "./replica-process.ts";
import { createTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

/** The policy a degraded lab runs: the example policy's limits (services/stepgate/policy/example.yaml). */
export const labPolicy = `
levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  recovery_code: { acr: aal2, amr: [otp] }
challenge: { ttl: 300, max_attempts: 5 }
lockout: { max_failures: 10, duration: 900 }
grant_ttl: 300
actions:
  payments.transfer: { acr: aal2, max_age: 300, methods: [totp] }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
`;

/** `lockout.max_failures` of `labPolicy`: a subject whose run of failures passes it is locked. */
export const labLockoutMaxFailures = 10;

/** The Redis key prefix of a lab's replicas. */
export const labRedisPrefix = "lab:";

/**
 * The replicas' detection settings unless told otherwise, in ms. Stores answer in well under 10 ms
 * on loopback, so the bounds are short but leave a loaded 2-core machine room for GC pauses and
 * slow inserts: Redis 250 (default 500), PostgreSQL 1000 (default 2000: the drainer inserts batches
 * of up to 500 events, and a connection is opened within it); stores probed every 200 ms (default
 * 2000); a dead replica's audit events taken over after 1000 (default 30_000). The breaker keeps
 * its defaults (3 failures, 1000 ms half-open).
 */
export const labDetection = {
  healthIntervalMs: 200,
  redisTimeoutMs: 250,
  postgresTimeoutMs: 1000,
  auditClaimAfterMs: 1000,
} as const;

/** How a degraded lab's replicas detect a failed store; times are in ms, defaults `labDetection`. */
export interface DegradedLabOptions {
  /** Replica processes. Default 3. */
  replicas?: number;
  /** STEPGATE_HEALTH_INTERVAL_MS: how often each replica probes its stores. Default 200. */
  healthIntervalMs?: number;
  /** STEPGATE_REDIS_TIMEOUT_MS: the bound on one Redis command. Default 250. */
  redisTimeoutMs?: number;
  /** STEPGATE_POSTGRES_TIMEOUT_MS: the bound on one PostgreSQL statement or connect. Default 1000. */
  postgresTimeoutMs?: number;
  /** STEPGATE_AUDIT_CLAIM_AFTER_MS: when another replica takes over a dead one's audit events. Default 1000. */
  auditClaimAfterMs?: number;
  /** More replica environment, applied last. */
  env?: Record<string, string>;
  /** Told of each step while the lab starts (for a runner's progress lines). */
  onProgress?: (line: string) => void;
}

/** One replica of the lab, with the proxies that are its only way to PostgreSQL and to Redis. */
export interface LabReplica {
  readonly process: ReplicaProcess;
  readonly postgresProxy: TcpProxy;
  readonly redisProxy: TcpProxy;
}

/**
 * Stepgate replica processes on a PostgreSQL and a Redis of the lab's own, each replica reaching each
 * store through a TCP proxy of its own: a store can be stopped by PID, cut off for every replica
 * (every proxy of that store), or for one replica alone (its proxy).
 */
export interface DegradedLab {
  readonly postgres: OwnPostgres;
  readonly redis: OwnRedis;
  readonly replicas: LabReplica[];
  /** `ipv4:127.0.0.1:p1,127.0.0.1:p2,…` over every replica. */
  readonly target: string;
  /** A client over every replica (caller `payments`), closed by `destroy()`. */
  readonly client: StepgateClient;
  /** The replicas' environment (PORT and REPLICA_ID aside). */
  readonly env: Readonly<Record<string, string>>;
  /** Runs one query on the lab's PostgreSQL, directly (no proxy), on a connection of its own that
   * gives up after `timeoutMs` (default 5000). Rejects when PostgreSQL does not answer. */
  query<T extends pg.QueryResultRow>(text: string, params?: unknown[], timeoutMs?: number): Promise<T[]>;
  /** An ioredis client on the lab's Redis, directly, that never retries and gives up after 1000 ms a
   * command; closed by `destroy()`. */
  readonly redisClient: Redis;
  /** Every proxy of `store`. */
  proxies(store: "postgresql" | "redis"): TcpProxy[];
  /** Stops every replica (SIGKILL), closes the proxies and the clients, destroys both stores and
   * removes the policy's folder. Idempotent; never rejects. */
  destroy(): Promise<void>;
}

/**
 * Starts a degraded lab: its own PostgreSQL and Redis (`startOwnPostgres`, `startOwnRedis`), two
 * proxies per replica, and `replicas` processes of `services/stepgate/src/main.ts` on 127.0.0.1 at
 * log level info (one line per call) with short detection settings. The first replica starts
 * alone (migrations, signing key), the others together. On failure, everything started is
 * destroyed before it rejects.
 */
export async function startDegradedLab(options: DegradedLabOptions = {}): Promise<DegradedLab> {
  const size = options.replicas ?? 3;
  const progress = options.onProgress ?? (() => {});
  const undo: (() => Promise<unknown>)[] = [];
  const dir = mkdtempSync(join(tmpdir(), "stepgate-lab-"));
  undo.push(async () => rmSync(dir, { recursive: true, force: true }));
  const destroyAll = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => {});
  };
  try {
    progress("starting PostgreSQL and Redis of the lab's own");
    const [postgres, redis] = await Promise.all([startOwnPostgres(), startOwnRedis()]);
    undo.push(
      () => postgres.destroy(),
      () => redis.destroy(),
    );
    const policyFile = join(dir, "policy.yaml");
    writeFileSync(policyFile, labPolicy);
    const env: Record<string, string> = {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_POLICY_FILE: policyFile,
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: `lab1:${randomBytes(32).toString("base64")}`,
      STEPGATE_LOG_LEVEL: "info",
      STEPGATE_DRAIN_DELAY_MS: "0",
      STEPGATE_SHUTDOWN_GRACE_MS: "2000",
      STEPGATE_HEALTH_INTERVAL_MS: String(options.healthIntervalMs ?? labDetection.healthIntervalMs),
      STEPGATE_REDIS_TIMEOUT_MS: String(options.redisTimeoutMs ?? labDetection.redisTimeoutMs),
      STEPGATE_POSTGRES_TIMEOUT_MS: String(options.postgresTimeoutMs ?? labDetection.postgresTimeoutMs),
      STEPGATE_AUDIT_CLAIM_AFTER_MS: String(options.auditClaimAfterMs ?? labDetection.auditClaimAfterMs),
      DATABASE_POOL_SIZE: "5",
      REDIS_PREFIX: labRedisPrefix,
      ...options.env,
    };
    const replicas: LabReplica[] = [];
    for (let i = 1; i <= size; i++) {
      const postgresProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: postgres.port } });
      undo.push(() => postgresProxy.close());
      const redisProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: redis.port } });
      undo.push(() => redisProxy.close());
      const replica = replicaProcess(
        `replica-${i}`,
        await freePort(),
        {
          ...env,
          DATABASE_URL: postgresProxy.rewriteUrl(postgres.url),
          REDIS_URL: redisProxy.rewriteUrl(redis.url),
        },
        { stopGraceMs: 3000, maxLines: 200_000 },
      );
      undo.push(() => replica.stop("SIGKILL"));
      replicas.push({ process: replica, postgresProxy, redisProxy });
    }
    progress(`starting ${size} replicas`);
    await replicas[0]?.process.start();
    await Promise.all(replicas.slice(1).map((r) => r.process.start()));
    const target = `ipv4:${replicas.map((r) => r.process.address).join(",")}`;
    const client = createStepgateClient({ target, caller: "payments" });
    undo.push(async () => client.close());
    const redisClient = new Redis(redis.url, {
      commandTimeout: 1000,
      maxRetriesPerRequest: 0,
      lazyConnect: true,
    });
    redisClient.on("error", () => {});
    undo.push(async () => redisClient.disconnect());
    let destroyed: Promise<void> | undefined;
    return {
      postgres,
      redis,
      replicas,
      target,
      client,
      env,
      redisClient,
      query: (text, params, timeoutMs) => query(postgres.url, text, params, timeoutMs),
      proxies: (store) => replicas.map((r) => (store === "postgresql" ? r.postgresProxy : r.redisProxy)),
      destroy: () => (destroyed ??= destroyAll()),
    };
  } catch (error) {
    await destroyAll();
    throw error;
  }
}

/** One query on a connection of its own, bounded by `timeoutMs` (connect and query). */
async function query<T extends pg.QueryResultRow>(
  url: string,
  text: string,
  params: unknown[] = [],
  timeoutMs = 5000,
): Promise<T[]> {
  const client = new pg.Client({
    connectionString: url,
    connectionTimeoutMillis: timeoutMs,
    query_timeout: timeoutMs,
  });
  // A PostgreSQL that goes away must not crash the process: the query rejects instead.
  client.on("error", () => {});
  try {
    await client.connect();
    return (await client.query<T>(text, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}
