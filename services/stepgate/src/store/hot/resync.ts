import { durableKinds, flowKinds, hotKeys } from "../hot-keys.ts";
import type { Pg } from "../sql.ts";
import type { HotStore } from "./hot-store.ts";

// More rows than any live set of revocations, spent grants and lockouts should hold.
const maxRows = 200_000;

/**
 * Forgets the cached factors of every subject whose factors changed within `factorCacheTtlMs`:
 * a change made while Redis was unreachable never reached its cache, and a removed factor must
 * not come back from it. Returns how many subjects were forgotten.
 */
export async function forgetChangedFactors(
  pg: Pg,
  redis: HotStore,
  factorCacheTtlMs: number,
): Promise<number> {
  const rows = await pg.sql<{ subject: string }>(
    `select subject from subject_versions where updated_at > now() - ($1 * interval '1 millisecond') limit ${maxRows}`,
    [factorCacheTtlMs],
  );
  for (let i = 0; i < rows.length; i += 500) {
    await redis.delete(...rows.slice(i, i + 500).map((r) => hotKeys.factorCache(r.subject)));
  }
  return rows.length;
}

/**
 * Copies the security state mirrored in PostgreSQL's hot_entries (revocations, spent grants,
 * lockouts: `durableKinds`) into Redis, raising and never lowering what Redis holds. Run before
 * Redis is used again after an outage or a reconnect, so a Redis that restarted empty or missed
 * writes cannot re-open what was closed. Fails with the store's error; returns the rows copied.
 */
export async function resyncSecurityState(pg: Pg, redis: HotStore): Promise<number> {
  const rows = await liveEntries(pg, durableKinds);
  await Promise.all(rows.map((r) => redis.raise(r.key, Number(r.value ?? r.counter), r.ttlMs)));
  return rows.length;
}

/**
 * Copies the flow state PostgreSQL's hot_entries took while Redis was away (`flowKinds`: open
 * challenges, their attempts and answers, recorded Verify results, elevations) into Redis, where
 * Redis holds nothing for the key: a value set only if absent, a counter raised and never lowered,
 * a TOTP step claim claimed again (it only moves forward).
 * Run with `resyncSecurityState` before calls go back to Redis, so a challenge issued during the
 * outage can still be answered after it and its result replayed. Fails with the store's error;
 * returns the rows copied.
 */
export async function resyncFlowState(pg: Pg, redis: HotStore): Promise<number> {
  const rows = await liveEntries(pg, flowKinds);
  await Promise.all(rows.map((r) => copyFlowEntry(redis, r)));
  return rows.length;
}

type LiveEntry = Awaited<ReturnType<typeof liveEntries>>[number];

// A TOTP step or passkey counter claim is a position and its owner (PostgreSQL: counter and value;
// Redis: one string), so it is claimed again rather than copied; a counter is raised; a value is
// set if absent.
function copyFlowEntry(redis: HotStore, r: LiveEntry): Promise<unknown> {
  if (r.key.startsWith("totp-step:") || r.key.startsWith("passkey-counter:"))
    return redis.advance(r.key, r.counter, r.value ?? "", r.ttlMs);
  if (r.value === null) return redis.raise(r.key, r.counter, r.ttlMs);
  return redis.setIfAbsent(r.key, r.value, r.ttlMs);
}

/** The live hot_entries rows of `kinds`, each with the ms it has left (at least 1). */
async function liveEntries(pg: Pg, kinds: readonly string[]) {
  const rows = await pg.sql<{
    key: string;
    value: string | null;
    counter: string | number;
    ms: string | number;
  }>(
    `select key, value, counter, extract(epoch from (expires_at - now())) * 1000 as ms
     from hot_entries where expires_at > now() and key like any($1) limit ${maxRows}`,
    [kinds.map((kind) => `${kind}:%`)],
  );
  return rows.map((r) => ({
    key: r.key,
    value: r.value,
    counter: Number(r.counter),
    ttlMs: Math.max(1, Math.round(Number(r.ms))),
  }));
}
