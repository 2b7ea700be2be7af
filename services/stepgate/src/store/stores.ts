import { type AttemptCounters, createAttemptCounters } from "./attempt-counters.ts";
import { type AuditStore, createAuditStore } from "./audit-store.ts";
import { type ChallengeStore, createChallengeStore } from "./challenge-store.ts";
import { type ConsumedGrants, createConsumedGrants } from "./consumed-grants.ts";
import { type Database, migrate, openDatabase } from "./database.ts";
import { createFactorStore, type FactorStore } from "./factor-store.ts";
import type { HotStore } from "./hot/hot-store.ts";
import { createPostgresHotStore } from "./hot/postgres-hot-store.ts";
import { createRedisHotStore } from "./hot/redis-hot-store.ts";
import { createMarkers, type Markers } from "./markers.ts";
import { createRecoveryCodeStore, type RecoveryCodeStore } from "./recovery-code-store.ts";
import { createServiceSecretStore, type ServiceSecretStore } from "./service-secret-store.ts";
import { createSessionStore, type SessionStore } from "./session-store.ts";
import { createSigningKeyStore, type SigningKeyStore } from "./signing-key-store.ts";
import { sqlFor } from "./sql.ts";
import { createVerifyResults, type VerifyResults } from "./verify-results.ts";

/** The short-lived, shared state: typed views over one hot store. */
export interface HotStores {
  challenges: ChallengeStore;
  verifyResults: VerifyResults;
  attempts: AttemptCounters;
  sessions: SessionStore;
  consumedGrants: ConsumedGrants;
  markers: Markers;
}

/** Every store the service uses, PostgreSQL and hot state together. */
export interface Stores extends HotStores {
  factors: FactorStore;
  recoveryCodes: RecoveryCodeStore;
  signingKeys: SigningKeyStore;
  audit: AuditStore;
  secrets: ServiceSecretStore;
  /** Which store carries the hot state. */
  hotKind: HotStore["kind"];
  /** Resolves when PostgreSQL answers; throws otherwise. */
  pingDatabase(): Promise<void>;
  /** Resolves when the hot store answers; throws otherwise. */
  pingHot(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  databaseUrl: string;
  /** Connections in the pool. */
  databasePoolSize: number;
  /** Hot state in Redis when set; in PostgreSQL otherwise. */
  redisUrl: string | undefined;
  /** Prepended to every Redis key. */
  redisPrefix: string;
  /** Told the names of migrations applied at open. */
  onMigrated?: (names: string[]) => void;
}

/** Typed hot-state stores over `hot` (Redis, PostgreSQL, or memory in unit tests). */
export function hotStoresOver(hot: HotStore): HotStores {
  return {
    challenges: createChallengeStore(hot),
    verifyResults: createVerifyResults(hot),
    attempts: createAttemptCounters(hot),
    sessions: createSessionStore(hot),
    consumedGrants: createConsumedGrants(hot),
    markers: createMarkers(hot),
  };
}

/**
 * Opens PostgreSQL, applies pending migrations (one replica at a time), and opens the hot store.
 * Fails with the driver's error when PostgreSQL cannot be reached or a migration fails.
 */
export async function openStores(options: StoreOptions): Promise<Stores> {
  const db: Database = await openDatabase({ url: options.databaseUrl, poolSize: options.databasePoolSize });
  try {
    const applied = await migrate(db, options.databaseUrl);
    if (applied.length > 0) options.onMigrated?.(applied);
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
  const hot = options.redisUrl
    ? createRedisHotStore({ url: options.redisUrl, prefix: options.redisPrefix })
    : createPostgresHotStore(db);
  const sql = sqlFor(db);
  return {
    ...hotStoresOver(hot),
    factors: createFactorStore(db),
    recoveryCodes: createRecoveryCodeStore(db),
    signingKeys: createSigningKeyStore(db),
    audit: createAuditStore(db),
    secrets: createServiceSecretStore(db),
    hotKind: hot.kind,
    pingDatabase: async () => {
      await sql("select 1");
    },
    pingHot: () => hot.ping(),
    async close() {
      await hot.close();
      await db.close();
    },
  };
}
