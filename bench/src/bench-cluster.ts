import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  type ReplicaProcess,
  type ReplicaProcessOptions,
  startReplicaProcess,
  warmCompileCache,
} from "@stepgate/testkit/replica-process";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix, type TestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";
import { cpuSeconds, resetPeakMemory, residentMemory } from "./process-stats.ts";

const examplePolicyFile = join(import.meta.dirname, "../../services/stepgate/policy/example.yaml");
const migrateScript = join(import.meta.dirname, "../../services/stepgate/src/migrate.ts");

/**
 * The example policy with its rate limits raised out of reach: every call still pays for counting
 * them, but a scenario that drives a few subjects thousands of times a second is not refused.
 */
function benchPolicyFile(): string {
  const example = readFileSync(examplePolicyFile, "utf8");
  const at = example.indexOf("\nrate_limits:");
  const withoutLimits = at < 0 ? example : example.slice(0, at);
  // STEPGATE_BENCH_RATE_LIMITS=0: no limit at all, to see what counting them costs.
  const policy =
    process.env.STEPGATE_BENCH_RATE_LIMITS === "0"
      ? withoutLimits
      : `${withoutLimits}
rate_limits:
  subject: { calls: 10000000, per: 60 }
  source: { calls: 10000000, per: 1 }
  caller: { calls: 10000000, per: 1 }
`;
  const file = join(mkdtempSync(join(tmpdir(), "stepgate-bench-")), "policy.yaml");
  writeFileSync(file, policy);
  return file;
}

export interface BenchClusterOptions {
  size: number;
  databaseAdminUrl: string;
  redisUrl: string;
  /** First port; replica i listens on basePort + i. */
  basePort: number;
  /** The replicas' policy file (default: `benchPolicyFile()`). */
  policyFile?: string;
  /** Cores the replicas are pinned to, as `taskset -c` takes them (default: any). */
  cpuList?: string;
  /** NODE_OPTIONS for the replicas (default: STEPGATE_BENCH_REPLICA_NODE_OPTIONS, else none). */
  nodeOptions?: string;
  /** Node and V8 flags for the replicas, on their command line (default: those in
   * STEPGATE_BENCH_REPLICA_NODE_FLAGS, else the production ones, `replicaNodeFlags`). */
  nodeFlags?: readonly string[];
  /** More environment for the replicas, after the bench's own (e.g. a memory probe's directory). */
  env?: Record<string, string>;
}

/** CPU seconds used so far, by PID: the replicas, and the store processes working for them. */
export interface CpuSnapshot {
  replicas: Map<number, number>;
  /** This run's PostgreSQL backends and PostgreSQL's background processes, plus the Redis server. */
  stores: Map<number, number>;
}

/** CPU seconds used between two snapshots. Per PID, so a backend that appears in between counts
 * from zero; one that exits in between loses its last moments (pools keep theirs open). */
export function cpuUsed(before: CpuSnapshot, after: CpuSnapshot): { replicas: number; stores: number } {
  const used = (a: Map<number, number>, b: Map<number, number>) =>
    [...b].reduce((total, [pid, seconds]) => total + Math.max(0, seconds - (a.get(pid) ?? 0)), 0);
  return { replicas: used(before.replicas, after.replicas), stores: used(before.stores, after.stores) };
}

export interface ReplicaMemory {
  id: string;
  peakBytes: number;
  rssBytes: number;
}

/** Replica processes on a fresh database and Redis prefix, removed again by `close()`. */
export interface BenchCluster {
  replicas: ReplicaProcess[];
  /** `ipv4:` target over every replica, for a round_robin channel. */
  target: string;
  database: TestDatabase;
  redis: TestRedisPrefix;
  /** The key ring the replicas seal TOTP secrets with (the seeding needs it). */
  encryptionKeys: string;
  cpu(): Promise<CpuSnapshot>;
  memory(): ReplicaMemory[];
  /** Resets every replica's VmHWM to its current RSS, so the next `memory()` shows the peak since;
   * false if the kernel refused for any of them. */
  resetPeakMemory(): boolean;
  close(): Promise<void>;
}

export async function startBenchCluster(options: BenchClusterOptions): Promise<BenchCluster> {
  const database = await createTestDatabase(options.databaseAdminUrl, { namePrefix: "stepgate_bench_" });
  const redis = createTestRedisPrefix(options.redisUrl, { namespace: "stepgate-bench" });
  const { pid: redisPid } = await redis.info();
  const encryptionKeys = `b1:${randomBytes(32).toString("base64")}`;
  const flagsFromEnv = process.env.STEPGATE_BENCH_REPLICA_NODE_FLAGS?.split(" ").filter(Boolean);
  const nodeFlags = options.nodeFlags ?? flagsFromEnv;
  // As the image runs them: from a compile cache filled before they start (Dockerfile).
  const compileCache = mkdtempSync(join(tmpdir(), "stepgate-bench-cache-"));
  warmCompileCache(compileCache, nodeFlags);
  const env = {
    STEPGATE_HOST: "127.0.0.1",
    STEPGATE_POLICY_FILE: options.policyFile ?? benchPolicyFile(),
    STEPGATE_INSECURE_DEV: "1",
    STEPGATE_ENCRYPTION_KEYS: encryptionKeys,
    STEPGATE_BENCH: "1",
    // Per-call info lines would cost more than some of the calls measured.
    STEPGATE_LOG_LEVEL: "warn",
    STEPGATE_DRAIN_DELAY_MS: "0",
    DATABASE_URL: database.url,
    REDIS_URL: options.redisUrl,
    REDIS_PREFIX: redis.prefix,
    NODE_COMPILE_CACHE: compileCache,
    // Admission settings pass through, for experiments (e.g. STEPGATE_ADMISSION_MIN_LIMIT=1000).
    ...Object.fromEntries(
      Object.entries(process.env).filter(
        ([name]) =>
          name.startsWith("STEPGATE_ADMISSION_") ||
          name.startsWith("STEPGATE_EVENT_LOOP_") ||
          name.startsWith("STEPGATE_THROTTLE_"),
      ),
    ),
    ...options.env,
  };
  // The replicas get only `env` (and PATH): an inherited OTEL_* variable would switch exporters on and
  // skew the figures.
  const replicaOptions: ReplicaProcessOptions = {
    // Profiling: e.g. STEPGATE_BENCH_REPLICA_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof".
    nodeOptions: options.nodeOptions ?? process.env.STEPGATE_BENCH_REPLICA_NODE_OPTIONS,
    // To compare V8 flags: e.g. STEPGATE_BENCH_REPLICA_NODE_FLAGS="" for V8's defaults.
    ...(nodeFlags ? { nodeFlags } : {}),
    stopGraceMs: 5000,
    // The warnings and lifecycle lines written while serving, for the report.
    keepLines: "after-serving",
    maxLines: 1000,
    ...(options.cpuList === undefined ? {} : { cpuList: options.cpuList }),
  };
  const replicas: ReplicaProcess[] = [];
  const start = async (i: number) => {
    replicas.push(await startReplicaProcess(`bench-${i + 1}`, options.basePort + i, env, replicaOptions));
  };
  const close = async () => {
    await Promise.all(replicas.map((r) => r.stop()));
    await redis.clean();
    await database.drop();
    rmSync(compileCache, { recursive: true, force: true });
  };
  try {
    // As docker-compose.yml runs them: the migrate job first, so replicas never load the ORM.
    const migrated = spawnSync(process.execPath, [migrateScript], {
      env: { PATH: process.env.PATH, ...env },
      encoding: "utf8",
    });
    if (migrated.status !== 0) throw new Error(`migrate failed (${migrated.status}): ${migrated.stderr}`);
    // The first one alone creates the signing key; the rest start together.
    await start(0);
    await Promise.all(Array.from({ length: options.size - 1 }, (_, i) => start(i + 1)));
  } catch (error) {
    await close();
    throw error;
  }
  replicas.sort((a, b) => a.port - b.port);
  return {
    replicas,
    target: `ipv4:${replicas.map((r) => r.address).join(",")}`,
    database,
    redis,
    encryptionKeys,
    async cpu() {
      const storePids = [...(await database.serverPids()), redisPid];
      const byPid = (pids: number[]) => new Map(pids.map((pid) => [pid, cpuSeconds(pid)]));
      return { replicas: byPid(replicas.map((r) => r.pid ?? 0)), stores: byPid(storePids) };
    },
    memory: () => replicas.map((r) => ({ id: r.id, ...residentMemory(r.pid ?? 0) })),
    resetPeakMemory: () => replicas.map((r) => resetPeakMemory(r.pid ?? 0)).every(Boolean),
    close,
  };
}
