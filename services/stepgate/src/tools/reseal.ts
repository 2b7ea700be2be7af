import { loadResealConfig } from "../config/config.ts";
import { ConfigError } from "../config/config-error.ts";
import { loadFingerprint } from "../crypto/fingerprint.ts";
import { parseKeyRing } from "../crypto/key-ring.ts";
import { systemClock } from "../domain/clock.ts";
import { loadSigningKeys } from "../grants/signing-keys.ts";
import { type ResealReport, runReseal, type TableProgress } from "../keys/reseal.ts";
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

function leftOver(report: ResealReport): string {
  const parts = [
    ...Object.entries(report.remaining.rows).map(([table, n]) => [table, n] as const),
    ["challenges", report.remaining.hot.challenges] as const,
    ["verify results", report.remaining.hot.verifyResults] as const,
    ["factor cache", report.remaining.hot.factorCache] as const,
  ].filter(([, n]) => n > 0);
  return parts.map(([what, n]) => `${what} ${n}`).join(", ");
}

async function main(): Promise<void> {
  const config = loadResealConfig(process.env);
  const keyRing = parseKeyRing(config.encryptionKeys, config.encryptionKeyId);
  const lock = await tryResealLock(config.databaseUrl);
  if (!lock) return fail(3, "another re-seal job holds the lock; try again when it ends");
  const bounds = (callTimeoutMs: number) => ({ callTimeoutMs, failureThreshold: 5, halfOpenAfterMs: 1000 });
  try {
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
      say(`moving every sealed value to key "${keyRing.activeKeyId}" (batches of ${config.batchSize})`);
      const report = await runReseal(
        {
          keyRing,
          rows: stores.sealedRows,
          progress: stores.resealProgress,
          hot: stores.sealedHot,
          async resaveStartupCopies() {
            // Loading saves the startup copy; which keys it would publish does not matter here.
            await loadSigningKeys({
              ...{ store: stores.signingKeys, keyRing, copies: stores.startupCopies },
              ...{ clock: systemClock, retentionMs: 0 },
            });
            await loadFingerprint(keyRing, (candidate) =>
              stores.secrets.getOrCreate("fingerprint", candidate),
            );
          },
        },
        {
          batchSize: config.batchSize,
          pauseMs: config.pauseMs,
          maxPasses: 3,
          onProgress: (p) => say(progressLine(p)),
        },
      );
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
          `not done after ${report.passes} passes: still under another key: ${leftOver(report)}. ` +
            `Make "${report.keyId}" the active key (STEPGATE_ENCRYPTION_KEY_ID) on every replica, ` +
            "keep every old key in the ring until then, and run this again",
        );
      }
      process.stdout.write(`${JSON.stringify(report)}\n`);
    } finally {
      await stores.close();
    }
  } finally {
    await lock.release();
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
