import { randomBytes } from "node:crypto";
import { type ReplicaProcess, replicaProcess } from "@stepgate/testkit/replica-process";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, redisUrl, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { newKeyRing, writePolicy } from "./stepgate.ts";

/** Replica processes sharing the machine's PostgreSQL (a fresh database) and Redis (a fresh prefix). */
export interface Cluster {
  replicas: ReplicaProcess[];
  /** `ipv4:` target over the running replicas. */
  target(): string;
  /** Starts one more replica on the next port. */
  add(): Promise<ReplicaProcess>;
  db: TestDatabase;
  close(): Promise<void>;
}

export interface ClusterOptions {
  size?: number;
  /** Extra environment for every replica, e.g. a short STEPGATE_MAX_CONNECTION_AGE_MS. */
  env?: Record<string, string>;
  /**
   * Extra environment for single replicas by id (`replica-1`, `replica-2`, …, in start order),
   * applied after `env`, e.g. `{ "replica-3": { STEPGATE_FAULT_UNAVAILABLE: "1" } }`.
   */
  replicaEnv?: Record<string, Record<string, string>>;
  /** The PostgreSQL server to create the cluster's database on (default: the machine's), e.g. one the test stops. */
  databaseServerUrl?: string;
}

/**
 * A random first port for up to 32 replica processes, below the ephemeral range (32768 and up):
 * there, a client socket's local port or a throwaway PostgreSQL or Redis the kernel placed can hold
 * a replica's port, and its start or restart fails with EADDRINUSE.
 */
export function replicaBasePort(): number {
  return 21_000 + (randomBytes(2).readUInt16BE() % 11_000);
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const db = await createTestDatabase(options.databaseServerUrl);
  const redis: TestRedisPrefix = createTestRedisPrefix();
  const env = {
    STEPGATE_HOST: "127.0.0.1",
    STEPGATE_POLICY_FILE: writePolicy(),
    STEPGATE_INSECURE_DEV: "1",
    STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
    STEPGATE_LOG_LEVEL: "info",
    STEPGATE_FAULT_INJECTION: "1",
    STEPGATE_DRAIN_DELAY_MS: "300",
    STEPGATE_SHUTDOWN_GRACE_MS: "5000",
    DATABASE_URL: db.url,
    DATABASE_POOL_SIZE: "5",
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redis.prefix,
    ...options.env,
  };
  const basePort = replicaBasePort();
  const replicas: ReplicaProcess[] = [];
  const add = async () => {
    const id = `replica-${replicas.length + 1}`;
    const r = replicaProcess(id, basePort + replicas.length, { ...env, ...options.replicaEnv?.[id] });
    replicas.push(r);
    await r.start();
    return r;
  };
  try {
    // The first one alone creates the schema and the signing key; the rest start together.
    await add();
    await Promise.all(Array.from({ length: (options.size ?? 3) - 1 }, () => add()));
  } catch (error) {
    await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
    await redis.clean();
    await db.drop();
    throw error;
  }
  return {
    replicas,
    add,
    db,
    target: () => `ipv4:${replicas.map((r) => r.address).join(",")}`,
    async close() {
      await Promise.all(replicas.map((r) => r.stop("SIGKILL")));
      await redis.clean();
      await db.drop();
    },
  };
}
