import { setTimeout as sleep } from "node:timers/promises";
import type { Call } from "./call-kinds.ts";
import type { PgCounters, PgProbe, RowWrites } from "./pg-counters.ts";
import type { RedisCounters, RedisProbe } from "./redis-counters.ts";

/** What the stores did in one window: the calls, and background work until everything settled. */
export interface StoreWork {
  calls: number;
  /** Seconds the calls took, and seconds of the whole window (the settling included). Redis's CPU
   * (`redis.cpuSeconds`) is counted over the calls alone. */
  callSeconds: number;
  windowSeconds: number;
  redis: RedisCounters;
  pg: PgCounters;
  /** Audit events still in the Redis outbox after the window (0: the drainer had moved them all). */
  outboxLeft: number;
}

/** `work` per call (per second for a window with no calls), in the same units as `StoreWork`. */
export interface PerCall {
  redisCommands: Record<string, number>;
  redisCommandsTotal: number;
  redisReads: number;
  redisBytesIn: number;
  redisBytesOut: number;
  /** Redis main-thread CPU, µs. */
  redisCpuMicros: number;
  pgCommits: number;
  pgRollbacks: number;
  pgWrites: RowWrites;
  pgTables: Record<string, RowWrites>;
  walBytes: number;
}

export interface WindowOptions {
  redis: RedisProbe;
  pg: PgProbe;
  /** The audit outbox's key (REDIS_PREFIX + audit-outbox), read after the window. */
  outboxKey: string;
  /**
   * How long to wait after the last call before the closing snapshot, ms: the drainer's last batch,
   * then PostgreSQL's statistics. A backend reports at most once a second, and one that goes idle
   * within a second of its last report does so only when its idle timer fires, 10 s later
   * (PGSTAT_IDLE_INTERVAL, PostgreSQL 15): 10.5 s covers both.
   */
  settleMs: number;
}

/**
 * Runs `calls`, `concurrency` at a time, between two snapshots of the stores' counters; whatever
 * came before must have settled (see `settleMs`). A window with no calls lasts `idleMs` (ms): what
 * a replica's background work costs per second.
 */
export async function measureWindow(
  calls: Call[],
  concurrency: number,
  options: WindowOptions,
  idleMs = 0,
): Promise<StoreWork> {
  const pgBefore = await options.pg.counters();
  const redisBefore = await options.redis.counters();
  const started = performance.now();
  let next = 0;
  const lane = async () => {
    while (next < calls.length) await (calls[next++] as Call)();
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, calls.length) }, lane));
  const callSeconds = (performance.now() - started) / 1000;
  // Redis's CPU over the calls alone: over the settling it would be mostly its idle timers.
  const redisCallsDone = calls.length === 0 ? undefined : await options.redis.counters();
  await sleep(calls.length === 0 ? idleMs : options.settleMs);
  const redisAfter = await options.redis.counters();
  const pgAfter = await options.pg.counters();
  const windowSeconds = (performance.now() - started) / 1000;
  const outboxLeft = Number(await options.redis.command("XLEN", options.outboxKey));
  return {
    calls: calls.length,
    callSeconds,
    windowSeconds,
    redis: {
      ...options.redis.between(redisBefore, redisAfter),
      cpuSeconds: (redisCallsDone ?? redisAfter).cpuSeconds - redisBefore.cpuSeconds,
    },
    pg: options.pg.between(pgBefore, pgAfter),
    outboxLeft,
  };
}

/**
 * `work` less what an idle replica does in as long (`idle`, a window with no calls): the polling of
 * the audit drainer and the health checks, which a longer settling time would otherwise add to every
 * call. Counts stay at 0 or more.
 */
export function lessIdle(work: StoreWork, idle: StoreWork): StoreWork {
  const share = work.windowSeconds / idle.windowSeconds;
  const less = (n: number, idleN: number, s = share) => Math.max(0, n - idleN * s);
  const commands: Record<string, number> = {};
  for (const [name, n] of Object.entries(work.redis.commands)) {
    commands[name] = less(n, idle.redis.commands[name] ?? 0);
  }
  const r = work.redis;
  const ir = idle.redis;
  return {
    ...work,
    redis: {
      commands,
      reads: less(r.reads, ir.reads),
      inputBytes: less(r.inputBytes, ir.inputBytes),
      outputBytes: less(r.outputBytes, ir.outputBytes),
      cpuSeconds: less(r.cpuSeconds, ir.cpuSeconds, work.callSeconds / idle.windowSeconds),
      probe: r.probe,
    },
    pg: {
      ...work.pg,
      commits: less(work.pg.commits, idle.pg.commits),
      walBytes: less(work.pg.walBytes, idle.pg.walBytes),
    },
  };
}

const round2 = (n: number) => Math.round(n * 100) / 100;
const divide = (w: RowWrites, by: number): RowWrites => ({
  inserted: round2(w.inserted / by),
  updated: round2(w.updated / by),
  deleted: round2(w.deleted / by),
});

/** `work` divided by its calls (by its seconds if it had none), rounded to 2 decimals. */
export function perCall(work: StoreWork): PerCall {
  const by = work.calls || work.windowSeconds;
  const redisCommands: Record<string, number> = {};
  let total = 0;
  for (const [name, calls] of Object.entries(work.redis.commands).sort()) {
    total += calls;
    if (round2(calls / by) !== 0) redisCommands[name] = round2(calls / by);
  }
  const pgTables: Record<string, RowWrites> = {};
  for (const [name, writes] of Object.entries(work.pg.tables)) pgTables[name] = divide(writes, by);
  return {
    redisCommands,
    redisCommandsTotal: round2(total / by),
    redisReads: round2(work.redis.reads / by),
    redisBytesIn: Math.round(work.redis.inputBytes / by),
    redisBytesOut: Math.round(work.redis.outputBytes / by),
    redisCpuMicros: round2((work.redis.cpuSeconds * 1e6) / by),
    pgCommits: round2(work.pg.commits / by),
    pgRollbacks: round2(work.pg.rollbacks / by),
    pgWrites: divide(work.pg.writes, by),
    pgTables,
    walBytes: Math.round(work.pg.walBytes / by),
  };
}
