import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLogger } from "./log/logger.ts";
import { main } from "./main.ts";

// `pnpm dev`: one replica on 127.0.0.1:50051 with the example policy. With no DATABASE_URL it
// serves on an embedded PostgreSQL (PGlite) whose data lives in .stepgate/dev, so enrolments survive restarts.
const repoRoot = resolve(import.meta.dirname, "../../..");
const devDir = process.env.STEPGATE_DEV_DIR ?? join(repoRoot, ".stepgate", "dev");
const env = { ...process.env };
const log = createLogger(env.STEPGATE_LOG_LEVEL ?? "info", { mode: "dev" });

mkdirSync(devDir, { recursive: true, mode: 0o700 });
env.STEPGATE_HOST ??= "127.0.0.1";
env.STEPGATE_POLICY_FILE ??= join(repoRoot, "services/stepgate/policy/example.yaml");

let afterShutdown: (() => Promise<void>) | undefined;
if (!env.DATABASE_URL) {
  const port = Number(env.STEPGATE_DEV_PG_PORT ?? 54329);
  const dataDir = join(devDir, "pgdata");
  log.info(
    { dataDir, port },
    "no DATABASE_URL: serving on an embedded PostgreSQL (PGlite); data persists in dataDir",
  );
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const db = await PGlite.create(dataDir);
  // PGlite has one session: one pooled connection avoids waiting on another connection's transaction.
  const socket = new PGLiteSocketServer({ db, port, host: "127.0.0.1", maxConnections: 4 });
  await socket.start();
  // PGlite flushes its files on close: stop it after the server has drained.
  afterShutdown = async () => {
    await socket.stop();
    await db.close();
  };
  env.DATABASE_URL = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  env.DATABASE_POOL_SIZE = "1";
}
if (!env.STEPGATE_ENCRYPTION_KEYS) {
  const keyFile = join(devDir, "encryption-keys");
  if (!existsSync(keyFile)) {
    writeFileSync(keyFile, `dev1:${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
  }
  env.STEPGATE_ENCRYPTION_KEYS = readFileSync(keyFile, "utf8").trim();
  log.warn({ keyFile }, "no STEPGATE_ENCRYPTION_KEYS: using a development key ring kept in keyFile");
}
if (!env.REDIS_URL) log.info("no REDIS_URL: hot state lives in PostgreSQL");

await main(env, afterShutdown ? { afterShutdown } : {});
