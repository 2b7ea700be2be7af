import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { createLineFormat, logFormatFor } from "./log/dev-log-format.ts";
import { createLogger } from "./log/logger.ts";
import { migrate, openDatabase } from "./store/database.ts";

// `pnpm dev`: three replicas on consecutive ports from 50051 with the example policy. With no
// DATABASE_URL they share an embedded PostgreSQL (PGlite) whose data lives in .stepgate/dev, so
// enrolments survive restarts.
const repoRoot = resolve(import.meta.dirname, "../../..");
const devDir = process.env.STEPGATE_DEV_DIR ?? join(repoRoot, ".stepgate", "dev");
const env: NodeJS.ProcessEnv = { ...process.env };
// Readable lines on a terminal, JSON elsewhere; the replicas always write JSON, formatted here.
const onTerminal = process.stdout.isTTY === true;
const formatLine = await createLineFormat(logFormatFor(env.STEPGATE_LOG_FORMAT, onTerminal), {
  colorize: onTerminal,
});
const log = createLogger(
  env.STEPGATE_LOG_LEVEL ?? "info",
  { mode: "dev" },
  { write: (line: string) => void process.stdout.write(formatLine(line)) },
);
const replicas = Number(env.STEPGATE_DEV_REPLICAS ?? 3);
const basePort = Number(env.STEPGATE_PORT ?? 50051);

mkdirSync(devDir, { recursive: true, mode: 0o700 });
env.STEPGATE_HOST ??= "127.0.0.1";
env.STEPGATE_POLICY_FILE ??= join(repoRoot, "services/stepgate/policy/example.yaml");
// Plaintext and the stepgate-caller header, unless certificates are configured: nothing to manage.
if (!env.STEPGATE_TLS_CERT_FILE) env.STEPGATE_INSECURE_DEV ??= "1";
// Without Redis each replica counts rate limits alone, with its share of each.
env.STEPGATE_FLEET_SIZE ??= String(replicas);

let stopDatabase = async () => {};
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
  // Each replica holds one pooled connection; PGlite runs one session, so more would only queue.
  const socket = new PGLiteSocketServer({ db, port, host: "127.0.0.1", maxConnections: replicas * 2 + 2 });
  await socket.start();
  env.DATABASE_URL = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  env.DATABASE_POOL_SIZE = "1";
  // PGlite runs every connection's statements one after another in one session: a statement may
  // wait behind the other replicas' for seconds on a busy machine, which is no outage.
  env.STEPGATE_POSTGRES_TIMEOUT_MS ??= "20000";
  // PGlite flushes its files on close: stop it after the replicas have drained.
  stopDatabase = async () => {
    await socket.stop();
    await db.close();
  };
  // PGlite's single session makes advisory locks reentrant, so migrate here once, before the replicas.
  const orm = await openDatabase({ url: env.DATABASE_URL, poolSize: 1 });
  await migrate(orm, env.DATABASE_URL).finally(() => orm.close());
}
if (!env.STEPGATE_ENCRYPTION_KEYS) {
  const keyFile = join(devDir, "encryption-keys");
  if (!existsSync(keyFile))
    writeFileSync(keyFile, `dev1:${randomBytes(32).toString("base64")}\n`, { mode: 0o600 });
  env.STEPGATE_ENCRYPTION_KEYS = readFileSync(keyFile, "utf8").trim();
  log.warn({ keyFile }, "no STEPGATE_ENCRYPTION_KEYS: using a development key ring kept in keyFile");
}
if (!env.REDIS_URL && !env.REDIS_SENTINELS)
  log.info("no REDIS_URL or REDIS_SENTINELS: hot state lives in PostgreSQL");

const ports = Array.from({ length: replicas }, (_, i) => basePort + i);
let serving = 0;
const children: ChildProcess[] = ports.map((port, i) => {
  const child = spawn(process.execPath, [join(import.meta.dirname, "main.ts")], {
    env: {
      ...env,
      STEPGATE_PORT: String(port),
      STEPGATE_REPLICA_ID: env.STEPGATE_REPLICA_ID ?? `dev-${i + 1}`,
    },
    stdio: ["ignore", "pipe", "inherit"],
  });
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
    process.stdout.write(formatLine(line));
    if (line.includes('"stepgate serving"') && ++serving === replicas) printBanner();
  });
  child.once("exit", (code, signal) => {
    if (!stopping) log.error({ replica: i + 1, code, signal }, "replica exited");
  });
  return child;
});

function printBanner() {
  const target = `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
  process.stdout.write(
    [
      "",
      `Stepgate: ${replicas} replicas on 127.0.0.1:${ports.join(", ")}`,
      `  client target:  createStepgateClient({ target: "${target}", caller: "payments" })`,
      `  list services:  grpcurl -plaintext 127.0.0.1:${basePort} list`,
      `  health:         grpcurl -plaintext 127.0.0.1:${basePort} grpc.health.v1.Health/Check`,
      `  step up:        grpcurl -plaintext -H stepgate-caller:payments -d '{"subject":"alice","session_id":"s1","action":"payments.transfer"}' 127.0.0.1:${basePort} stepgate.v1.StepUpService/StepUp`,
      "  (the README walks through the whole flow)",
      "",
    ].join("\n"),
  );
}

let stopping = false;
async function stop(signal: NodeJS.Signals) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, "stopping the replicas");
  const codes = await Promise.all(
    children.map(
      (child) =>
        new Promise<number | null>((done) => {
          if (child.exitCode !== null || child.signalCode !== null) return done(child.exitCode);
          child.once("exit", (code) => done(code));
          child.kill("SIGTERM");
        }),
    ),
  );
  await stopDatabase();
  process.exit(codes.every((c) => c === 0) ? 0 : 1);
}
process.on("SIGTERM", () => void stop("SIGTERM"));
process.on("SIGINT", () => void stop("SIGINT"));
