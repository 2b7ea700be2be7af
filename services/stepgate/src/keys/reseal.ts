import { setTimeout as sleep } from "node:timers/promises";
import type { KeyRing } from "../crypto/key-ring.ts";
import type { ResealProgressStore } from "../store/reseal-progress.ts";
import type { HotEntry, SealedHotEntries } from "../store/sealed-hot-entries.ts";
import { type SealedRowStore, type SealedTable, sealedTables } from "../store/sealed-rows.ts";
import {
  challengeIdOf,
  challengeIsCurrent,
  factorCacheIsCurrent,
  resealChallenge,
  resealed,
  resealVerifyResult,
  rowBinding,
  verifyResultIsCurrent,
} from "./sealed-values.ts";

export interface ResealDeps {
  /** Opens values under any key it holds; seals them again under its active key. */
  keyRing: KeyRing;
  rows: SealedRowStore;
  progress: ResealProgressStore;
  hot: SealedHotEntries;
  /**
   * Writes the startup copies (sealed signing keys and fleet secrets) again from PostgreSQL, as a
   * replica's start does (grants/signing-keys.ts, crypto/fingerprint.ts).
   */
  resaveStartupCopies(): Promise<void>;
}

export interface ResealOptions {
  /** Rows read and re-sealed per batch; also the page size of hot-store scans. */
  batchSize: number;
  /** Pause after each batch, in ms, to spread the load on PostgreSQL; 0: none. */
  pauseMs: number;
  /** Passes over everything before giving up and reporting what is left (at least 1). */
  maxPasses: number;
  /** Told after each batch of one table. */
  onProgress?: (progress: TableProgress) => void;
}

/** Where one table stands. */
export interface TableProgress {
  table: SealedTable;
  /** Rows re-sealed to the active key, across runs (the count is kept with the cursor). */
  resealed: number;
  /** Rows re-sealed by this run. */
  resealedNow: number;
  /** Rows still sealed under another key, as far as this pass knows. */
  remaining: number;
  /** Rows that could not be opened (their key is not in the ring, or the value is damaged). */
  unopened: number;
  /** This run went on from a cursor a stopped run left. */
  resumed: boolean;
}

/** Values of the hot state still sealed under another key than the active one. */
export interface HotRemaining {
  challenges: number;
  verifyResults: number;
  factorCache: number;
}

export interface ResealReport {
  /** True only when the final check found nothing sealed under another key: those keys may leave the ring. */
  done: boolean;
  /** The active key everything was moved to. */
  keyId: string;
  passes: number;
  tables: Record<SealedTable, TableProgress>;
  /** Hot entries this run re-sealed (challenges' TOTP copies, recorded Verify results) and dropped (factor cache). */
  hot: { challenges: number; verifyResults: number; factorCacheDropped: number };
  /** What the final check found still under another key (all zero when done). */
  remaining: { rows: Record<SealedTable, number>; hot: HotRemaining };
}

/**
 * Moves every sealed value to the key ring's active key, without downtime: rows of PostgreSQL in
 * batches, each row swapped only if it still holds what was read (a replica's write wins), with a
 * cursor per table kept in PostgreSQL so a stopped job resumes; then the startup copies are saved
 * again, challenges' TOTP copies and recorded Verify results in the hot state re-sealed, and the
 * factor cache dropped (it is only a cache). A final check then looks for anything still sealed
 * under another key, which a replica still active on an old key may have written meanwhile; if it
 * finds some, the job passes again, up to `maxPasses`. Throws what the stores throw.
 */
export async function runReseal(deps: ResealDeps, options: ResealOptions): Promise<ResealReport> {
  const keyId = deps.keyRing.activeKeyId;
  const tables = {} as Record<SealedTable, TableProgress>;
  const hot = { challenges: 0, verifyResults: 0, factorCacheDropped: 0 };
  for (let pass = 1; ; pass++) {
    const before = await deps.rows.countNotUnder(keyId);
    for (const table of sealedTables) {
      tables[table] = await resealTable(deps, options, table, before[table], tables[table]);
    }
    await deps.resaveStartupCopies();
    const moved = await resealHot(deps, options.batchSize);
    hot.challenges += moved.challenges;
    hot.verifyResults += moved.verifyResults;
    hot.factorCacheDropped += moved.factorCacheDropped;
    const remaining = {
      rows: await deps.rows.countNotUnder(keyId),
      hot: await hotRemaining(deps, options.batchSize),
    };
    const done =
      Object.values(remaining.rows).every((n) => n === 0) &&
      Object.values(remaining.hot).every((n) => n === 0);
    if (done || pass >= Math.max(1, options.maxPasses)) {
      for (const table of sealedTables) tables[table].remaining = remaining.rows[table];
      return { done, keyId, passes: pass, tables, hot, remaining };
    }
  }
}

/** One pass over a table, from its stored cursor (or from the start when the last pass was complete). */
async function resealTable(
  deps: ResealDeps,
  options: ResealOptions,
  table: SealedTable,
  remainingAtStart: number,
  earlier: TableProgress | undefined,
): Promise<TableProgress> {
  const { keyRing, rows, progress } = deps;
  const keyId = keyRing.activeKeyId;
  let cursor = await progress.load(table, keyId);
  const resumed = earlier?.resumed ?? (cursor.after !== null && !cursor.complete);
  const state: TableProgress = {
    table,
    resealed: cursor.resealed,
    resealedNow: earlier?.resealedNow ?? 0,
    remaining: remainingAtStart,
    unopened: 0,
    resumed,
  };
  if (remainingAtStart === 0) {
    if (!cursor.complete) await progress.save({ ...cursor, complete: true });
    return state;
  }
  // Rows were written under another key since the last complete pass: start the table again.
  if (cursor.complete) cursor = { ...cursor, after: null, complete: false };
  for (;;) {
    const batch = await rows.batch(table, keyId, cursor.after, options.batchSize);
    if (batch.length === 0) break;
    let moved = 0;
    for (const row of batch) {
      let sealed: Buffer;
      try {
        sealed = resealed(keyRing, row.sealed, rowBinding(table, row));
      } catch {
        // Left as it is; the final check counts it and the report names the table.
        state.unopened++;
        continue;
      }
      // False when a replica changed or removed the row since it was read: its write stands.
      if (await rows.reseal(table, row.id, row.sealed, sealed, keyId)) moved++;
    }
    cursor = {
      ...cursor,
      after: batch[batch.length - 1]?.id ?? cursor.after,
      resealed: cursor.resealed + moved,
    };
    await progress.save(cursor);
    state.resealed = cursor.resealed;
    state.resealedNow += moved;
    state.remaining = Math.max(0, state.remaining - moved);
    options.onProgress?.({ ...state });
    if (options.pauseMs > 0) await sleep(options.pauseMs);
  }
  await progress.save({ ...cursor, complete: true });
  return state;
}

/** Re-seals challenges' TOTP copies and the Verify results recorded for them; drops the factor cache. */
async function resealHot(deps: ResealDeps, pageSize: number) {
  const { keyRing, hot } = deps;
  const moved = { challenges: 0, verifyResults: 0, factorCacheDropped: 0 };
  await hot.scan("challenge", pageSize, async (entries) => {
    for (const entry of entries) {
      const again = attempt(() => resealChallenge(keyRing, entry.value));
      if (again !== undefined && (await hot.replace(entry, again))) moved.challenges++;
      // A recorded result is bound to its challenge and claim, which only the challenge's entries name.
      const challengeId = attempt(() => challengeIdOf(entry.value));
      const answer = challengeId === undefined ? undefined : await hot.answer(entry, challengeId);
      if (challengeId === undefined || !answer?.result) continue;
      const result: HotEntry = answer.result;
      const sealedAgain = attempt(() => resealVerifyResult(keyRing, result.value, challengeId, answer.claim));
      if (sealedAgain !== undefined && (await hot.replace(result, sealedAgain))) moved.verifyResults++;
    }
  });
  // Only a cache: dropped whole, since its entries also hold copies of rows sealed before this run.
  await hot.scan("factorCache", pageSize, async (entries) => {
    for (const entry of entries) if (await hot.drop(entry)) moved.factorCacheDropped++;
  });
  return moved;
}

/** Counts hot entries still sealed under another key (an entry that cannot be read counts too). */
async function hotRemaining(deps: ResealDeps, pageSize: number): Promise<HotRemaining> {
  const { keyRing, hot } = deps;
  const count = async (kind: Parameters<SealedHotEntries["scan"]>[0], current: (v: string) => boolean) => {
    let n = 0;
    await hot.scan(kind, pageSize, async (entries) => {
      for (const e of entries) if (!(attempt(() => current(e.value)) ?? false)) n++;
    });
    return n;
  };
  return {
    challenges: await count("challenge", (v) => challengeIsCurrent(keyRing, v)),
    verifyResults: await count("verifyResult", (v) => verifyResultIsCurrent(keyRing, v)),
    factorCache: await count("factorCache", (v) => factorCacheIsCurrent(keyRing, v)),
  };
}

/** `f()`, or undefined if it throws (a value that is damaged or sealed under a key the ring lacks). */
function attempt<T>(f: () => T): T | undefined {
  try {
    return f();
  } catch {
    return undefined;
  }
}
