import { Migrator } from "@mikro-orm/migrations";
import { MikroORM } from "@mikro-orm/postgresql";
import pg from "pg";
import { migrationNames, migrationsTable } from "./migration-names.ts";
import { Migration001Initial } from "./migrations/migration-001-initial.ts";
import { Migration002ServiceSecrets } from "./migrations/migration-002-service-secrets.ts";
import { Migration003AuditEventIds } from "./migrations/migration-003-audit-event-ids.ts";
import { Migration004SubjectVersions } from "./migrations/migration-004-subject-versions.ts";
import { Migration005SigningKeyLifecycle } from "./migrations/migration-005-signing-key-lifecycle.ts";
import { Migration006ResealProgress } from "./migrations/migration-006-reseal-progress.ts";
import { Migration007EnrolmentAuthorization } from "./migrations/migration-007-enrolment-authorization.ts";
import { Migration008Passkeys } from "./migrations/migration-008-passkeys.ts";
import { Migration009RevocationFeed } from "./migrations/migration-009-revocation-feed.ts";
import { Migration010SubjectFacts } from "./migrations/migration-010-subject-facts.ts";

export type Database = MikroORM;

/** The migrations, in the order of `migrationNames`. */
const migrationClasses = [
  Migration001Initial,
  Migration002ServiceSecrets,
  Migration003AuditEventIds,
  Migration004SubjectVersions,
  Migration005SigningKeyLifecycle,
  Migration006ResealProgress,
  Migration007EnrolmentAuthorization,
  Migration008Passkeys,
  Migration009RevocationFeed,
  Migration010SubjectFacts,
];

export interface DatabaseOptions {
  url: string;
  /** Connections in the pool. */
  poolSize: number;
  /**
   * When set, bounds every statement (PostgreSQL's statement_timeout and the driver's own
   * query timeout) and every connection attempt, in ms: a blackholed server costs at most this.
   */
  statementTimeoutMs?: number;
}

/** Opens the ORM; migrations are applied separately by `migrate`. Replicas serve from
 * store/pool.ts and load this module only to migrate. */
export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  return MikroORM.init({
    clientUrl: options.url,
    // MikroORM runs the migrations and the operator tools' connection only: the stores query with
    // their own SQL (store/sql.ts), so no entity is declared, and none is looked for.
    entities: [],
    discovery: { warnWhenNoEntities: false },
    extensions: [Migrator],
    pool: { min: 0, max: options.poolSize },
    ...(options.statementTimeoutMs === undefined
      ? {}
      : {
          driverOptions: {
            statement_timeout: options.statementTimeoutMs,
            query_timeout: options.statementTimeoutMs,
            connectionTimeoutMillis: options.statementTimeoutMs,
            keepAlive: true,
          },
        }),
    debug: false,
    allowGlobalContext: false,
    migrations: {
      tableName: migrationsTable,
      // The names in migration-names.ts, which a replica reads to know whether any is pending.
      migrationsList: migrationClasses.map((migration, i) => ({
        name: migrationNames[i] as string,
        class: migration,
      })),
      snapshot: false,
      silent: true,
    },
  });
}

// Any fixed 64-bit number: replicas that start together queue on it, so migrations run once.
const migrationLock = "84543917998452";

/**
 * Applies pending migrations, one replica at a time. The lock is a session lock held on its own
 * connection, outside any transaction, so it also works on PGlite's single shared session.
 */
export async function migrate(db: Database, url: string): Promise<string[]> {
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query("select pg_advisory_lock($1)", [migrationLock]);
    const applied = await db.migrator.up();
    return applied.map((m) => m.name);
  } finally {
    await lock.query("select pg_advisory_unlock($1)", [migrationLock]).catch(() => {});
    await lock.end().catch(() => {});
  }
}
