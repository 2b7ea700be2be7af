import type { PerCall, StoreWork } from "./measure-window.ts";
import type { PgRate } from "./pgbench.ts";
import type { RedisRate } from "./redis-benchmark.ts";

/** One call kind's measured work: the raw window and its per-call figures. */
export interface KindFigures {
  name: string;
  concurrency: number;
  work: StoreWork;
  perCall: PerCall;
}

/** Fleet-wide calls per second one Redis primary and one PostgreSQL primary carry, for one kind. */
export interface Ceiling {
  name: string;
  /** Redis requests/s (the slowest of GET, SET, INCR) over Redis commands per call. */
  redis: number;
  /** Single-UPDATE transactions/s over PostgreSQL commits per call. */
  postgres: number;
  /** One second of Redis main-thread CPU over its CPU per call: Redis on a core of its own. */
  redisCpu: number;
  /** The lower of the two, calls/s; which store sets it. */
  calls: number;
  limitedBy: "redis" | "postgres";
}

/** The request rate the ceilings divide: the slowest plain single-key command, requests/s. */
export function plainRedisRate(rates: RedisRate[]): number {
  return Math.min(...rates.filter((r) => ["GET", "SET", "INCR"].includes(r.test)).map((r) => r.opsPerSecond));
}

/** Each kind's ceiling, calls/s: store rate over the store's work per call (Infinity where none). */
export function ceilings(kinds: KindFigures[], redisRates: RedisRate[], pgRates: PgRate[]): Ceiling[] {
  const redisRate = plainRedisRate(redisRates);
  const pgRate = pgRates.find((r) => r.test === "one UPDATE by key")?.tps ?? Number.NaN;
  return kinds
    .filter((k) => k.name !== "idle")
    .map((k) => {
      const redis = k.perCall.redisCommandsTotal > 0 ? redisRate / k.perCall.redisCommandsTotal : Infinity;
      const postgres = k.perCall.pgCommits > 0 ? pgRate / k.perCall.pgCommits : Infinity;
      return {
        name: k.name,
        redis,
        postgres,
        redisCpu: k.perCall.redisCpuMicros > 0 ? 1e6 / k.perCall.redisCpuMicros : Infinity,
        calls: Math.min(redis, postgres),
        limitedBy: redis <= postgres ? "redis" : "postgres",
      };
    });
}

const pad = (s: string | number, n: number) => String(s).padStart(n);
const whole = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");
const writes = (w: { inserted: number; updated: number; deleted: number }) =>
  `${w.inserted}/${w.updated}/${w.deleted}`;

/** The report as text lines: per-call work, commands and tables by kind, store rates, ceilings. */
export function reportLines(kinds: KindFigures[], redisRates: RedisRate[], pgRates: PgRate[]): string[] {
  const lines = [
    "== store work per call (idle: per second); Redis commands include those run inside scripts and MULTI",
    `${"kind".padEnd(17)} ${pad("calls", 5)} ${pad("ms/call", 7)} ${pad("redis cmds", 10)} ${pad("reads", 6)} ${pad("redis µs", 8)} ${pad("pg xacts", 10)} ${pad("rows ins/upd/del", 17)} ${pad("WAL B", 6)} ${pad("left", 4)}`,
  ];
  for (const k of kinds) {
    const p = k.perCall;
    const ms = k.work.calls ? ((k.work.callSeconds * 1000) / k.work.calls).toFixed(2) : "-";
    lines.push(
      `${k.name.padEnd(17)} ${pad(k.work.calls, 5)} ${pad(ms, 7)} ${pad(p.redisCommandsTotal, 10)} ${pad(p.redisReads, 6)} ${pad(p.redisCpuMicros, 8)} ${pad(p.pgCommits, 10)} ${pad(writes(p.pgWrites), 17)} ${pad(p.walBytes, 6)} ${pad(k.work.outboxLeft, 4)}`,
    );
  }
  for (const k of kinds) {
    // Every call appends one audit event: fewer rows means statistics not yet reported.
    const added = k.work.redis.commands.xadd ?? 0;
    const stored = k.work.pg.tables.audit_events?.inserted ?? 0;
    if (added !== stored) lines.push(`! ${k.name}: ${added} audit events appended, ${stored} rows counted`);
  }
  lines.push("", "== Redis commands by name, per call");
  for (const k of kinds) {
    const named = Object.entries(k.perCall.redisCommands).map(([name, n]) => `${name} ${n}`);
    lines.push(`${k.name.padEnd(17)} ${named.join(", ") || "none"}`);
  }
  lines.push("", "== PostgreSQL row writes by table (inserted/updated/deleted), per call");
  for (const k of kinds) {
    const named = Object.entries(k.perCall.pgTables).map(([name, w]) => `${name} ${writes(w)}`);
    lines.push(`${k.name.padEnd(17)} ${named.join(", ") || "none"}`);
  }
  lines.push("", "== one Redis primary (requests/s)");
  for (const r of redisRates) lines.push(`${r.test.padEnd(17)} ${pad(whole(r.opsPerSecond), 9)}`);
  lines.push("", "== one PostgreSQL primary (transactions/s)");
  for (const r of pgRates) lines.push(`${r.test.padEnd(20)} ${pad(whole(r.tps), 7)}   ${r.command}`);
  lines.push(
    "",
    `== ceilings, calls/s fleet-wide (Redis ${whole(plainRedisRate(redisRates))} req/s over commands per call; PostgreSQL single-UPDATE tps over commits per call)`,
  );
  for (const c of ceilings(kinds, redisRates, pgRates)) {
    lines.push(
      `${c.name.padEnd(17)} redis ${pad(whole(c.redis), 9)}  postgres ${pad(whole(c.postgres), 9)}  => ${pad(whole(c.calls), 9)} (${c.limitedBy});  redis by CPU ${pad(whole(c.redisCpu), 9)}`,
    );
  }
  return lines;
}
