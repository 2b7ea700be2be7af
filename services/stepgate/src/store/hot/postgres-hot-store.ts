import type { Pg } from "../sql.ts";
import type { HotStore } from "./hot-store.ts";

const sweepIntervalMs = 60_000;

/** The hot store on PostgreSQL, for deployments without Redis: same semantics, one table. */
export function createPostgresHotStore(pg: Pg): HotStore {
  const run = pg.sql;
  const expiry = (ttlMs: number) => new Date(Date.now() + Math.max(1, Math.ceil(ttlMs)));
  // Expired rows are invisible to reads; the sweep only keeps the table small.
  const sweep = setInterval(() => {
    run("delete from hot_entries where expires_at < now() - interval '1 minute'", []).catch(() => {});
  }, sweepIntervalMs);
  sweep.unref();
  // One statement: the row lock serialises concurrent increments across replicas. With `below`,
  // a live counter already at `below` is left alone (undefined).
  const countUp = async (key: string, ttlMs: number, sliding = false, below?: number) => {
    const rows = await run<{ counter: string | number }>(
      `insert into hot_entries (key, value, counter, expires_at) values ($1, null, 1, $2)
       on conflict (key) do update set
         counter = case when hot_entries.expires_at <= now() then 1 else hot_entries.counter + 1 end,
         expires_at = case when hot_entries.expires_at <= now() or $3 then excluded.expires_at
                           else hot_entries.expires_at end
       where $4::int is null or hot_entries.expires_at <= now() or hot_entries.counter < $5::int
       returning counter`,
      [key, expiry(ttlMs), sliding, below ?? null, below ?? null],
    );
    return rows[0] === undefined ? undefined : Number(rows[0].counter);
  };
  const increment = async (key: string, ttlMs: number, sliding = false) =>
    (await countUp(key, ttlMs, sliding)) ?? 0;
  const counterOf = async (key: string) => {
    const rows = await run<{ counter: string | number }>(
      "select counter from hot_entries where key = $1 and expires_at > now()",
      [key],
    );
    return Number(rows[0]?.counter ?? 0);
  };
  return {
    kind: "postgresql",
    async get(key) {
      const rows = await run<{ value: string | null }>(
        "select value from hot_entries where key = $1 and expires_at > now()",
        [key],
      );
      return rows[0]?.value ?? null;
    },
    async getMany(keys) {
      if (keys.length === 0) return [];
      const rows = await run<{ key: string; value: string | null }>(
        "select key, value from hot_entries where key = any($1) and expires_at > now()",
        [keys],
      );
      const byKey = new Map(rows.map((r) => [r.key, r.value]));
      return keys.map((k) => byKey.get(k) ?? null);
    },
    async set(key, value, ttlMs) {
      await run(
        `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, 0, $3)
         on conflict (key) do update set value = excluded.value, counter = 0, expires_at = excluded.expires_at`,
        [key, value, expiry(ttlMs)],
      );
    },
    async setIfAbsent(key, value, ttlMs) {
      const rows = await run(
        `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, 0, $3)
         on conflict (key) do update set value = excluded.value, counter = 0, expires_at = excluded.expires_at
         where hot_entries.expires_at <= now()
         returning key`,
        [key, value, expiry(ttlMs)],
      );
      return rows.length === 1;
    },
    increment,
    async incrementBoth(first, second) {
      // Each statement is atomic; the gate is checked first and again by the conditional increment.
      const held = await counterOf(second.key);
      if (held >= second.limit) return [undefined, held];
      const a = await increment(first.key, first.ttlMs);
      if (a > first.limit) return [a, undefined];
      const b = await countUp(second.key, second.ttlMs, second.sliding, second.limit);
      return b === undefined ? [undefined, second.limit] : [a, b];
    },
    async setVersioned(key, version, value, ttlMs) {
      const rows = await run(
        `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, $3, $4)
         on conflict (key) do update set value = excluded.value, counter = excluded.counter,
           expires_at = excluded.expires_at
         where hot_entries.expires_at <= now() or hot_entries.counter <= excluded.counter
         returning key`,
        [key, `${version}:${value}`, version, expiry(ttlMs)],
      );
      return rows.length === 1;
    },
    async advance(key, position, owner, ttlMs) {
      // The row lock orders racing claims: exactly one moves the marker to a new position.
      const moved = await run(
        `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, $3, $4)
         on conflict (key) do update set value = excluded.value, counter = excluded.counter,
           expires_at = excluded.expires_at
         where hot_entries.expires_at <= now() or hot_entries.counter < excluded.counter
         returning key`,
        [key, owner, position, expiry(ttlMs)],
      );
      if (moved.length === 1) return "advanced";
      const held = await run(
        "select 1 from hot_entries where key = $1 and expires_at > now() and counter = $2 and value = $3",
        [key, position, owner],
      );
      return held.length === 1 ? "held" : "behind";
    },
    claimThenWrite: (claim, writes) =>
      pg.transaction(async (tx) => {
        // The conflicting row stays locked to the commit, taken or not: the writes follow the claim.
        const [row] = await tx<{ value: string | null }>(
          `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, 0, $3)
           on conflict (key) do update set value = case when hot_entries.expires_at <= now()
             then excluded.value else hot_entries.value end,
             expires_at = case when hot_entries.expires_at <= now()
             then excluded.expires_at else hot_entries.expires_at end
           returning value`,
          [claim.key, claim.value, expiry(claim.ttlMs)],
        );
        const held = row?.value ?? claim.value;
        if (held !== claim.value) return held;
        for (const w of writes) {
          if ("delete" in w) await tx("delete from hot_entries where key = $1", [w.key]);
          else
            await tx(
              `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, 0, $3)
               on conflict (key) do update set value = excluded.value, counter = 0, expires_at = excluded.expires_at`,
              [w.key, w.value, expiry(w.ttlMs)],
            );
        }
        return claim.value;
      }),
    async decrement(key) {
      await run(
        "update hot_entries set counter = counter - 1 where key = $1 and expires_at > now() and counter > 0",
        [key],
      );
    },
    async raise(key, count, ttlMs) {
      // A value row (a timestamp) and a counter row compare by their number; a lapsed row counts as 0.
      await run(
        `insert into hot_entries (key, value, counter, expires_at) values ($1, $2, $3, $4)
         on conflict (key) do update set value = excluded.value, counter = excluded.counter,
           expires_at = excluded.expires_at
         where hot_entries.expires_at <= now()
            or coalesce(hot_entries.value::numeric, hot_entries.counter) < excluded.counter`,
        [key, String(count), count, expiry(ttlMs)],
      );
    },
    async ttl(key) {
      const rows = await run<{ ms: string | number }>(
        "select extract(epoch from (expires_at - now())) * 1000 as ms from hot_entries where key = $1 and expires_at > now()",
        [key],
      );
      return Math.max(0, Math.round(Number(rows[0]?.ms ?? 0)));
    },
    async delete(...keys) {
      if (keys.length > 0) await run("delete from hot_entries where key = any($1)", [keys]);
    },
    async close() {
      clearInterval(sweep);
    },
  };
}
