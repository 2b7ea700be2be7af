import { loadResealConfig } from "../config/config.ts";
import { ConfigError } from "../config/config-error.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import type { TableProgress } from "../keys/reseal.ts";
import { createResealJob, remainingSummary } from "../keys/reseal-job.ts";
import { describeError } from "../log/describe-error.ts";
import { tryResealLock } from "../store/reseal-lock.ts";
import { openStores } from "../store/stores.ts";

// `pnpm reseal`: moves every value sealed at rest to STEPGATE_ENCRYPTION_KEY_ID (see docs/operations.md,
// "Rotating the encryption key"). Reads the replicas' environment. Prints progress, then the report
// as one JSON line. Exits 0 when nothing is left under another key, 1 when something is (run it
// again once every replica is active on the new key), 2 on an error, 3 while another job runs.
const say = (line: string) => process.stdout.write(`reseal: ${line}\n`);
const fail = (code: number, message: string) => {
  process.stderr.write(`reseal: ${message}\n`);
  process.exitCode = code;
};

const progressLine = (p: TableProgress) =>
  `${p.table}: ${p.resealed} re-sealed (${p.resealedNow} by this run${p.resumed ? ", resumed" : ""}), ${p.remaining} to go` +
  (p.unopened > 0 ? `, ${p.unopened} cannot be opened with this ring` : "");

async function main(): Promise<void> {
  const config = loadResealConfig(process.env);
  const keyRing = parseKeyRing(config.encryptionKeys, config.encryptionKeyId);
  const bounds = (callTimeoutMs: number) => ({ callTimeoutMs, failureThreshold: 5, halfOpenAfterMs: 1000 });
  const stores = await openStores({
    databaseUrl: config.databaseUrl,
    databasePoolSize: 2,
    redisTarget: config.redis,
    redisPrefix: config.redisPrefix,
    postgres: bounds(config.postgresTimeoutMs),
    redis: bounds(config.redisTimeoutMs),
    // Unused here: the job drops the factor cache rather than filling it.
    factorCacheTtlMs: 60_000,
  });
  try {
    const reseal = createResealJob({ keyRing, stores, tryLock: () => tryResealLock(config.databaseUrl) });
    say(`moving every sealed value to key "${keyRing.activeKeyId}" (batches of ${config.batchSize})`);
    const report = await reseal({
      batchSize: config.batchSize,
      pauseMs: config.pauseMs,
      onProgress: (p) => say(progressLine(p)),
    });
    if (report === "locked") return fail(3, "another re-seal job holds the lock; try again when it ends");
    const hot = report.hot;
    say(
      `hot state: ${hot.challenges} challenges and ${hot.verifyResults} verify results re-sealed, ` +
        `${hot.factorCacheDropped} factor cache entries dropped`,
    );
    if (report.done) {
      say(
        `done: nothing is sealed under a key other than "${report.keyId}"; the other keys may leave the ring`,
      );
    } else {
      fail(
        1,
        `not done after ${report.passes} passes: still under another key: ${remainingSummary(report)}. ` +
          `Make "${report.keyId}" the active key (STEPGATE_ENCRYPTION_KEY_ID) on every replica, ` +
          "keep every old key in the ring until then, and run this again",
      );
    }
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } finally {
    await stores.close();
  }
}

try {
  await main();
} catch (error) {
  // A ConfigError names the bad key, never its value; a driver's message is trimmed of parameters.
  const { name, message } = describeError(error);
  fail(
    2,
    error instanceof ConfigError ? error.message : `${String(name ?? "error")}: ${String(message ?? "")}`,
  );
}
