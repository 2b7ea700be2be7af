import { type AuditStore, createAuditStore } from "./audit-store.ts";
import { migrate, openDatabase } from "./database.ts";
import { createDependency, type DependencyOptions } from "./dependency.ts";
import { createSigningKeyStore, type SigningKeyStore } from "./signing-key-store.ts";
import { createPg } from "./sql.ts";

/** The PostgreSQL stores an operator command works on, without Redis or a replica around them. */
export interface OperatorStores {
  signingKeys: SigningKeyStore;
  audit: AuditStore;
  /** Migrations this open applied (the command may run before any replica of its release). */
  migrated: string[];
  close(): Promise<void>;
}

/**
 * Opens PostgreSQL on one connection, applying pending migrations (one replica or command at a
 * time, see `migrate`), with every statement bounded as a replica bounds it. Rejects with the
 * driver's error.
 */
export async function openOperatorStores(options: {
  databaseUrl: string;
  postgres: DependencyOptions;
}): Promise<OperatorStores> {
  const db = await openDatabase({
    url: options.databaseUrl,
    poolSize: 1,
    statementTimeoutMs: options.postgres.callTimeoutMs,
  });
  try {
    const migrated = await migrate(db, options.databaseUrl);
    const pg = createPg(db, createDependency("postgresql", options.postgres));
    return {
      signingKeys: createSigningKeyStore(pg),
      audit: createAuditStore(pg),
      migrated,
      close: () => db.close(),
    };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
