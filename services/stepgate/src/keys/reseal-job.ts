import { loadFingerprint } from "../crypto/fingerprint.ts";
import type { KeyRing } from "../crypto/key-ring.ts";
import { systemClock } from "../domain/clock.ts";
import { loadSigningKeys } from "../grants/signing-keys.ts";
import type { ResealLock } from "../store/reseal-lock.ts";
import type { Stores } from "../store/stores.ts";
import { type ResealReport, runReseal, type TableProgress } from "./reseal.ts";

/** How one job runs: batch size and pause (ms) between batches, and who hears of its progress. */
export interface ResealJobOptions {
  batchSize: number;
  pauseMs: number;
  onProgress?: (progress: TableProgress) => void;
}

/**
 * The re-seal job under the fleet's lock (`pnpm reseal` and AdminService.ResealValues share it):
 * the report of `runReseal` (three passes at most), or "locked" when another job holds the lock
 * and nothing ran. Throws what the stores throw; the lock is released either way.
 */
export type ResealJob = (options: ResealJobOptions) => Promise<ResealReport | "locked">;

export interface ResealJobDeps {
  keyRing: KeyRing;
  stores: Pick<
    Stores,
    "sealedRows" | "resealProgress" | "sealedHot" | "signingKeys" | "startupCopies" | "secrets"
  >;
  /** Takes the fleet's re-seal lock without waiting (store/reseal-lock.ts); undefined when it is held. */
  tryLock: () => Promise<ResealLock | undefined>;
}

export function createResealJob({ keyRing, stores, tryLock }: ResealJobDeps): ResealJob {
  return async (options) => {
    const lock = await tryLock();
    if (!lock) return "locked";
    try {
      return await runReseal(
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
        { ...options, maxPasses: 3 },
      );
    } finally {
      await lock.release();
    }
  };
}

/** What a report says is still under another key, e.g. "factors 3, challenges 1"; "" when nothing. */
export function remainingSummary(report: ResealReport): string {
  const parts = [
    ...Object.entries(report.remaining.rows).map(([table, n]) => [table, n] as const),
    ["challenges", report.remaining.hot.challenges] as const,
    ["verify results", report.remaining.hot.verifyResults] as const,
    ["factor cache", report.remaining.hot.factorCache] as const,
  ].filter(([, n]) => n > 0);
  return parts.map(([what, n]) => `${what} ${n}`).join(", ");
}
