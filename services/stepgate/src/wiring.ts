import { createHmac, createSecretKey } from "node:crypto";
import { createAuditLog } from "./audit/audit-log.ts";
import type { Config } from "./config/config.ts";
import { loadPolicy } from "./config/policy.ts";
import { parseKeyRing } from "./crypto/key-ring.ts";
import { type Clock, systemClock } from "./domain/clock.ts";
import { createFactorStore } from "./factors/factor-store.ts";
import { createGrantChecker } from "./grants/grant-check.ts";
import { createGrantIssuer } from "./grants/grant-issuer.ts";
import { loadSigningKeys } from "./grants/signing-keys.ts";
import { createAttempts } from "./limits/attempts.ts";
import { describeError } from "./log/describe-error.ts";
import type { Logger } from "./log/logger.ts";
import { createMetrics } from "./observability/metrics.ts";
import type { Stepgate } from "./stepgate.ts";
import { createChallenges } from "./stepup/challenges.ts";
import { createElevations } from "./stepup/elevations.ts";
import { type Database, migrate, openDatabase } from "./store/database.ts";
import type { HotStore } from "./store/hot-store.ts";
import { createPostgresHotStore } from "./store/postgres-hot-store.ts";
import { createRedisHotStore } from "./store/redis-hot-store.ts";

export interface Wired {
  stepgate: Stepgate;
  db: Database;
  hot: HotStore;
  close(): Promise<void>;
}

/** Builds the service from its configuration: stores, migrations, keys, domain parts. */
export async function wire(config: Config, logger: Logger, clock: Clock = systemClock): Promise<Wired> {
  const policy = loadPolicy(config.policyFile);
  const keyRing = parseKeyRing(config.encryptionKeys, config.encryptionKeyId);
  const db = await openDatabase({ url: config.databaseUrl, poolSize: config.databasePoolSize });
  try {
    const applied = await migrate(db, config.databaseUrl);
    if (applied.length > 0) logger.info({ migrations: applied }, "applied database migrations");
    const hot = config.redisUrl
      ? createRedisHotStore({ url: config.redisUrl, prefix: config.redisPrefix })
      : createPostgresHotStore(db);
    const signingKeys = await loadSigningKeys(db, keyRing);
    const audit = createAuditLog(db, {
      replica: config.replicaId,
      onError: (error) => logger.error({ error: describeError(error) }, "audit events not written yet"),
    });
    const maxGrantTtlMs = Math.max(...[...policy.actions.values()].map((a) => a.grantTtl)) * 1000;
    const elevations = createElevations(hot, policy, maxGrantTtlMs);
    // Fingerprints are keyed, so a stored one reveals nothing about the proof it came from.
    const hmacKey = createSecretKey(keyRing.derive("stepgate fingerprint"));
    const stepgate: Stepgate = {
      config,
      policy,
      clock,
      keyRing,
      hot,
      factors: createFactorStore(db),
      challenges: createChallenges(hot),
      elevations,
      attempts: createAttempts(hot, policy),
      signingKeys,
      issueGrant: createGrantIssuer(signingKeys, config.issuer, clock),
      grants: createGrantChecker(signingKeys, config.issuer, hot, elevations, clock),
      audit,
      metrics: createMetrics(),
      fingerprint: (...parts) =>
        createHmac("sha256", hmacKey).update(parts.join("\u0000")).digest("base64url"),
    };
    return {
      stepgate,
      db,
      hot,
      async close() {
        await audit.close();
        await hot.close();
        await db.close();
      },
    };
  } catch (error) {
    await db.close().catch(() => {});
    throw error;
  }
}
