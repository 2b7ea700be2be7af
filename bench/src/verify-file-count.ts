import { randomBytes } from "node:crypto";
import type { Profiler } from "node:inspector";
import { Session } from "node:inspector/promises";
import { join, sep } from "node:path";
import { Writable } from "node:stream";
import { fileURLToPath } from "node:url";
import { createTestDatabase } from "@stepgate/testkit/test-database";
import { createTestRedisPrefix } from "@stepgate/testkit/test-redis-prefix";

const root = join(import.meta.dirname, "../..");
const serverSrc = join(root, "services/stepgate/src") + sep;
const policyFile = join(root, "services/stepgate/policy/example.yaml");

/** Where one successful TOTP Verify ran inside services/stepgate/src. */
export interface VerifyFiles {
  /** Files (relative to services/stepgate/src, sorted) where some function ran during the call. */
  files: string[];
  /** How many functions ran in each of those files. */
  functionsRun: Record<string, number>;
}

/** The server files (no tests) that a coverage snapshot shows running: any range with a count above 0. */
function serverFilesRun(scripts: Profiler.ScriptCoverage[]): VerifyFiles {
  const functionsRun: Record<string, number> = {};
  for (const script of scripts) {
    if (!script.url.startsWith("file:")) continue;
    const path = fileURLToPath(script.url);
    if (!path.startsWith(serverSrc) || path.endsWith(".test.ts")) continue;
    // A function's first range is its whole body with its call count; later ranges are blocks. A
    // block counts too: an async function that resumes after an await runs without a new call.
    const ran = script.functions.filter((f) => f.ranges.some((r) => r.count > 0)).length;
    if (ran > 0) functionsRun[path.slice(serverSrc.length)] = ran;
  }
  return { files: Object.keys(functionsRun).sort(), functionsRun };
}

/**
 * Starts one replica in this process on a fresh database and Redis prefix, enrols and confirms a
 * TOTP factor, warms the Verify path up with `warmups` StepUp + Verify rounds, then measures V8
 * precise coverage around exactly one more successful Verify. Client and server share the process,
 * so only files under services/stepgate/src count.
 */
export async function measureVerifyFiles(options: {
  databaseAdminUrl: string;
  redisUrl: string;
  warmups?: number;
}): Promise<VerifyFiles> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.startPreciseCoverage", { callCount: true, detailed: true });

  // Undone in reverse order whatever step fails.
  const cleanups: (() => Promise<void> | void)[] = [];
  cleanups.push(async () => {
    await session.post("Profiler.stopPreciseCoverage");
    session.disconnect();
  });
  try {
    return await measure();
  } finally {
    for (const undo of cleanups.reverse()) await undo();
  }

  async function measure(): Promise<VerifyFiles> {
    // Loaded only now, with coverage on, so every server function is compiled with counters.
    const { loadConfig } = await import("@stepgate/server/config/config");
    const { createLogger } = await import("@stepgate/server/log/logger");
    const { runServer } = await import("@stepgate/server/server/run");
    const { totpCode } = await import("@stepgate/server/factors/totp");
    const { createStepgateClient } = await import("@stepgate/client");
    const database = await createTestDatabase(options.databaseAdminUrl, { namePrefix: "stepgate_bench_" });
    cleanups.push(() => database.drop());
    const redis = createTestRedisPrefix(options.redisUrl, { namespace: "stepgate-bench" });
    cleanups.push(async () => void (await redis.clean()));
    // The test harness's clock: one TOTP step per round, without waiting 30 s for it.
    let offsetMs = 0;
    const now = () => Date.now() + offsetMs;
    const config = loadConfig({
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_PORT: "0",
      STEPGATE_POLICY_FILE: policyFile,
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: `shape1:${randomBytes(32).toString("base64")}`,
      // No health probe lands inside the measured call.
      STEPGATE_HEALTH_INTERVAL_MS: "60000",
      STEPGATE_DRAIN_DELAY_MS: "0",
      DATABASE_URL: database.url,
      REDIS_URL: options.redisUrl,
      REDIS_PREFIX: redis.prefix,
    });
    // The default level (info) so the call logs what it logs in production; the lines are dropped.
    const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
    const server = await runServer(config, createLogger(config.logLevel, {}, discard), now);
    cleanups.push(() => server.shutdown(2000));
    const client = createStepgateClient({ target: `127.0.0.1:${server.port}`, caller: "payments", now });
    cleanups.push(() => client.close());
    const subject = `shape-${randomBytes(6).toString("hex")}`;
    const action = "payments.transfer";
    const enrolled = await client.factors.enrollTotp({
      subject,
      label: "Phone",
      accountName: `${subject}@example.com`,
      grant: "",
    });
    const code = () => totpCode(enrolled.secret, Math.floor(now() / 1000));
    await client.factors.confirmTotp({ subject, factorId: enrolled.factorId, code: code() });
    // Each round: the next TOTP step (a code is accepted once per step), a new session, a challenge.
    const prepare = async () => {
      offsetMs += 30_000;
      const sessionId = `session-${randomBytes(6).toString("hex")}`;
      const res = await client.stepUp.stepUp({ subject, sessionId, action });
      if (res.outcome.case !== "challenge") throw new Error(`StepUp answered ${res.outcome.case}`);
      // The code too, now: the bench computes it with the server's own totp.ts, which must not count.
      return { sessionId, challengeId: res.outcome.value.challengeId, code: code() };
    };
    const verify = async (round: Awaited<ReturnType<typeof prepare>>) => {
      const res = await client.stepUp.verify({
        challengeId: round.challengeId,
        subject,
        sessionId: round.sessionId,
        action,
        proof: { kind: { case: "totpCode", value: round.code } },
        idempotencyKey: `key-${randomBytes(8).toString("hex")}`,
      });
      if (!res.grant) throw new Error("Verify succeeded without a grant");
    };
    for (let i = 0; i < (options.warmups ?? 20); i++) await verify(await prepare());
    const round = await prepare();
    // Nothing of the preparation may still be running: the audit batch is written, timers are idle.
    await server.flushAudit();
    await new Promise((resolve) => setTimeout(resolve, 100));
    // takePreciseCoverage resets the counters: the first call clears them, the second reads the call.
    await session.post("Profiler.takePreciseCoverage");
    await verify(round);
    const { result } = await session.post("Profiler.takePreciseCoverage");
    return serverFilesRun(result);
  }
}
