import { loadConfig } from "./config/config.ts";
import { createLogger } from "./log/logger.ts";
import { migrate, openDatabase } from "./store/database.ts";

// A one-shot migration step (docker-compose runs it before the replicas). Replicas also migrate
// at start under the same advisory lock, so running both is harmless.
// It serves nothing, so it needs no transport settings of its own.
const env = {
  STEPGATE_POLICY_FILE: "-",
  STEPGATE_ENCRYPTION_KEYS: "-",
  ...(process.env.STEPGATE_TLS_CERT_FILE ? {} : { STEPGATE_INSECURE_DEV: "1" }),
  ...process.env,
};
let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig(env);
} catch (error) {
  process.stderr.write(`stepgate migrate: invalid configuration\n${(error as Error).message}\n`);
  process.exit(2);
}
const logger = createLogger(config.logLevel, { replica: config.replicaId, task: "migrate" });
const db = await openDatabase({ url: config.databaseUrl, poolSize: 1 });
try {
  const applied = await migrate(db, config.databaseUrl);
  logger.info(
    { migrations: applied },
    applied.length > 0 ? "applied database migrations" : "database is up to date",
  );
} finally {
  await db.close();
}
