import type { RedisTarget } from "../config/redis-target.ts";
import type { DependencyName } from "../domain/dependency-unavailable.ts";
import { type AttemptCounters, createAttemptCounters } from "./attempt-counters.ts";
import { type AuditOutbox, createAuditOutbox } from "./audit-outbox.ts";
import { type AuditStore, createAuditStore } from "./audit-store.ts";
import { type AuditTrail, createAuditTrail } from "./audit-trail.ts";
import { type ChallengeStore, createChallengeStore } from "./challenge-store.ts";
import { type ConsumedGrants, createConsumedGrants } from "./consumed-grants.ts";
import { createDependency, type Dependency, type DependencyOptions } from "./dependency.ts";
import { createDurableMirror, type DurableMirror, noMirror } from "./durable-mirror.ts";
import { createFactorCache, type FactorCache } from "./factor-cache.ts";
import { createFactorStore, type FactorStore } from "./factor-store.ts";
import { createFailoverHotStore } from "./hot/failover-hot-store.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { createPostgresHotStore } from "./hot/postgres-hot-store.ts";
import { createRedisHotStore, type RedisHotStore, redisConnectionOf } from "./hot/redis-hot-store.ts";
import { forgetChangedFactors, resyncFlowState, resyncSecurityState } from "./hot/resync.ts";
import { isFlowKey } from "./hot-keys.ts";
import { isInfrastructureFailure } from "./infrastructure-failure.ts";
import { createMarkers, type Markers } from "./markers.ts";
import { createPasskeyCounters, type PasskeyCounters } from "./passkey-counters.ts";
import { createPasskeyStore, type PasskeyStore } from "./passkey-store.ts";
import { migrationsPending } from "./pending-migrations.ts";
import { openPool } from "./pool.ts";
import { createRateLimitStore, type RateLimitStore } from "./rate-limit-store.ts";
import { createRecoveryCodeStore, type RecoveryCodeStore } from "./recovery-code-store.ts";
import { createResealProgressStore, type ResealProgressStore } from "./reseal-progress.ts";
import { createRevocationLog, type RevocationLog } from "./revocation-log.ts";
import { createSealedHotEntries, type SealedHotEntries } from "./sealed-hot-entries.ts";
import { createSealedRowStore, type SealedRowStore } from "./sealed-rows.ts";
import { createServiceSecretStore, type ServiceSecretStore } from "./service-secret-store.ts";
import { createSessionStore, type SessionStore } from "./session-store.ts";
import { createSigningKeyStore, type SigningKeyStore } from "./signing-key-store.ts";
import { createPg } from "./sql.ts";
import { createStartupCopies, type StartupCopies } from "./startup-copies.ts";
import { createSubjectFactStore, type SubjectFactStore } from "./subject-facts.ts";
import { createTotpStepClaims, type TotpStepClaims } from "./totp-step-claims.ts";
import { createVerifyResults, type VerifyResults } from "./verify-results.ts";

/** The short-lived, shared state: typed views over one hot store. */
export interface HotStores {
  challenges: ChallengeStore;
  verifyResults: VerifyResults;
  attempts: AttemptCounters;
  sessions: SessionStore;
  consumedGrants: ConsumedGrants;
  markers: Markers;
  factorCache: FactorCache;
  stepClaims: TotpStepClaims;
  passkeyCounters: PasskeyCounters;
  startupCopies: StartupCopies;
}

/** Every store the service uses, PostgreSQL and hot state together. */
export interface Stores extends HotStores {
  factors: FactorStore;
  passkeys: PasskeyStore;
  recoveryCodes: RecoveryCodeStore;
  signingKeys: SigningKeyStore;
  audit: AuditStore;
  /** The audit trail read back, for operators. */
  auditTrail: AuditTrail;
  /** The revocation feed's source, in PostgreSQL. */
  revocations: RevocationLog;
  /** "Seen before" facts of the policy's rule conditions, by keyed hash. */
  subjectFacts: SubjectFactStore;
  /** The Redis stream audit events wait in on their way to `audit`; undefined without Redis. */
  auditOutbox: AuditOutbox | undefined;
  secrets: ServiceSecretStore;
  /** Sealed values in PostgreSQL by the key that sealed them, for the re-seal job. */
  sealedRows: SealedRowStore;
  /** Where the re-seal job stands in each table. */
  resealProgress: ResealProgressStore;
  /** Sealed entries of the hot state, in Redis and PostgreSQL, for the re-seal job. */
  sealedHot: SealedHotEntries;
  /** Rate-limit counters: in Redis for the fleet, in memory while Redis is down or absent. */
  rateLimits: RateLimitStore;
  /** Which store carries the hot state right now. */
  readonly hotKind: HotStore["kind"];
  /** The dependencies, each behind its circuit breaker (Redis only when configured). */
  dependencies: Dependency[];
  /** Probes one dependency through its breaker: the probe is the trial call of an open circuit. */
  probe(name: DependencyName): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  databaseUrl: string;
  /** Connections in the pool. */
  databasePoolSize: number;
  /** Hot state in Redis (one server or Sentinel's primary) when set; in PostgreSQL otherwise (and while Redis is down). */
  redisTarget: RedisTarget | undefined;
  /** Prepended to every Redis key. */
  redisPrefix: string;
  /** PostgreSQL's bounds: statement and connection timeouts, breaker. */
  postgres: DependencyOptions;
  /** Redis's bounds: command and connection timeouts, breaker. */
  redis: DependencyOptions;
  /** How long cached factors live, in ms (see factors/enrolled-factors.ts). */
  factorCacheTtlMs: number;
  /** The share (0 to 1) of each rate limit a replica allows while it counts alone (no Redis); default 1. */
  rateLimitLocalShare?: number;
  /** Told when PostgreSQL cannot be reached at start: the replica starts without migrating. */
  onStartWithoutPostgres?: (error: unknown) => void;
  /** Told the names of migrations applied at open. */
  onMigrated?: (names: string[]) => void;
  /** Told when the hot state moves to PostgreSQL or back to Redis. */
  onHotSwitch?: (active: "redis" | "postgresql") => void;
  /** Told when security state could not be carried back into Redis (it is tried again). */
  onResyncError?: (error: unknown) => void;
  /** Told when the Redis client gave up reconnecting on its own and is made to connect again. */
  onRedisRestart?: () => void;
  /** Told each time the Redis connection is made again after a loss (a resync follows). */
  onRedisReconnect?: () => void;
  /**
   * How long, in ms, the fleet's replicas may differ in seeing Redis back: the breaker's half-open
   * period plus the health interval (see FailoverHotStoreOptions.settleMs). Default: the half-open
   * period plus 1000.
   */
  hotSettleMs?: number;
}

/**
 * Appends to the outbox and reads its backlog through Redis's breaker: while Redis is known down
 * an event goes straight to PostgreSQL instead of waiting for a command timeout, and a metrics
 * read fails at once. (The drainer's blocking reads do not.)
 */
function guardedAppend(outbox: AuditOutbox, dependencies: Dependency[]): AuditOutbox {
  const redis = dependencies.find((d) => d.name === "redis");
  if (!redis) return outbox;
  return {
    ...outbox,
    append: (event) => redis.run(() => outbox.append(event)),
    backlog: () => redis.run(() => outbox.backlog()),
  };
}

/** Typed hot-state stores over `hot` (Redis, PostgreSQL, or memory in unit tests). */
export function hotStoresOver(hot: HotStore, mirror: DurableMirror = noMirror): HotStores {
  return {
    challenges: createChallengeStore(hot),
    verifyResults: createVerifyResults(hot),
    attempts: createAttemptCounters(hot, mirror),
    sessions: createSessionStore(hot, mirror),
    consumedGrants: createConsumedGrants(hot, mirror),
    markers: createMarkers(hot),
    factorCache: createFactorCache(hot),
    stepClaims: createTotpStepClaims(hot),
    passkeyCounters: createPasskeyCounters(hot),
    startupCopies: createStartupCopies(hot),
  };
}

/**
 * Opens PostgreSQL (applying pending migrations, one replica at a time) and Redis. Fails with the
 * driver's error when a migration fails. A PostgreSQL that cannot be reached at start is reported
 * (`onStartWithoutPostgres`) and the replica starts degraded; a Redis that cannot be reached at
 * start only means the hot state starts in PostgreSQL.
 */
export async function openStores(options: StoreOptions): Promise<Stores> {
  const db = openPool({
    url: options.databaseUrl,
    poolSize: options.databasePoolSize,
    statementTimeoutMs: options.postgres.callTimeoutMs,
  });
  try {
    // The ORM and its migrations (about 9 MiB) load only when a migration is pending: usually the
    // migrate job or the first replica of a release has applied them.
    if (await migrationsPending(db.kysely)) {
      const { migrate, openDatabase } = await import("./database.ts");
      // Migrations run unbounded on a pool of their own: a schema change may take longer than a call.
      const migrating = await openDatabase({ url: options.databaseUrl, poolSize: 1 });
      try {
        const applied = await migrate(migrating, options.databaseUrl);
        if (applied.length > 0) options.onMigrated?.(applied);
      } finally {
        await migrating.close().catch(() => {});
      }
    }
  } catch (error) {
    // PostgreSQL is unreachable: start degraded (see StartupCopies); the fleet migrates later.
    if (!isInfrastructureFailure(error)) {
      await db.close().catch(() => {});
      throw error;
    }
    options.onStartWithoutPostgres?.(error);
  }
  const postgres = createDependency("postgresql", options.postgres);
  const pg = createPg(db, postgres);
  const pgHot = createPostgresHotStore(pg);
  const dependencies = [postgres];
  let hot: HotStore = pgHot;
  let mirror = noMirror;
  let probeRedis = async () => {};
  let closeRedis = async () => {};
  let redisHot: RedisHotStore | undefined;
  if (options.redisTarget) {
    // ioredis fails each command after callTimeoutMs itself (commandTimeout, redis-hot-store.ts).
    const redisDependency = createDependency("redis", { ...options.redis, driverTimesOut: true });
    dependencies.push(redisDependency);
    redisHot = createRedisHotStore({
      target: options.redisTarget,
      prefix: options.redisPrefix,
      dependency: redisDependency,
      connectTimeoutMs: Math.max(1000, options.redis.callTimeoutMs * 4),
      ...(options.onRedisRestart ? { onRestart: options.onRedisRestart } : {}),
    });
    const redis = redisHot;
    if (options.onRedisReconnect) redis.onReconnect(options.onRedisReconnect);
    await redis.ready(Math.max(1000, options.redis.callTimeoutMs * 4));
    const failover = createFailoverHotStore({
      primary: redis,
      primaryDependency: redisDependency,
      fallback: pgHot,
      resync: () =>
        Promise.all([
          resyncSecurityState(pg, redis),
          resyncFlowState(pg, redis),
          forgetChangedFactors(pg, redis, options.factorCacheTtlMs),
        ]).then(
          () => {},
          (error: unknown) => {
            options.onResyncError?.(error);
            throw error;
          },
        ),
      ...(options.onHotSwitch ? { onSwitch: options.onHotSwitch } : {}),
      settleMs: options.hotSettleMs ?? options.redis.halfOpenAfterMs + 1000,
      readThrough: isFlowKey,
    });
    hot = failover;
    mirror = createDurableMirror(failover, pgHot);
    probeRedis = () => redis.probe();
    closeRedis = () => failover.close();
  }
  const redisConnection = redisHot ? redisConnectionOf(redisHot) : undefined;
  const auditOutbox = redisConnection
    ? guardedAppend(createAuditOutbox(redisConnection), dependencies)
    : undefined;
  const hotStores = hotStoresOver(hot, mirror);
  return {
    ...hotStores,
    factors: createFactorStore(pg),
    passkeys: createPasskeyStore(pg),
    recoveryCodes: createRecoveryCodeStore(pg),
    signingKeys: createSigningKeyStore(pg),
    audit: createAuditStore(pg),
    auditTrail: createAuditTrail(pg),
    revocations: createRevocationLog(pg),
    subjectFacts: createSubjectFactStore(pg),
    auditOutbox,
    secrets: createServiceSecretStore(pg, hotStores.startupCopies),
    sealedRows: createSealedRowStore(pg),
    resealProgress: createResealProgressStore(pg),
    sealedHot: createSealedHotEntries({ pg, redis: redisConnection, redisPrefix: options.redisPrefix }),
    rateLimits: createRateLimitStore({
      redis: redisConnection,
      dependency: dependencies.find((d) => d.name === "redis"),
      localShare: options.rateLimitLocalShare ?? 1,
    }),
    get hotKind() {
      return hot.kind;
    },
    dependencies,
    probe: (name) => (name === "redis" ? probeRedis() : pg.probe()),
    async close() {
      await auditOutbox?.close();
      await closeRedis();
      await pgHot.close();
      await db.close();
    },
  };
}
