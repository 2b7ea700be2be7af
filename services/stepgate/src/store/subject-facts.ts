import type { Pg } from "./sql.ts";

/**
 * "Seen before" facts in PostgreSQL, by keyed hash (stepup/subject-facts.ts makes them): when each
 * was last seen in an approved step-up. Never returned to callers. Rejects as PostgreSQL does
 * (DependencyUnavailableError while it is down).
 */
export interface SubjectFactStore {
  /** When each of `facts` was last seen at or after `sinceMs` (ms since the epoch); absent ones are not in the map. */
  seen(facts: readonly string[], sinceMs: number): Promise<Map<string, number>>;
  /** Records `facts` as seen at `atMs` (a later sighting keeps the later time). */
  record(facts: readonly string[], atMs: number): Promise<void>;
  /** Deletes facts last seen before `beforeMs`, at most `limit`; resolves with how many. */
  prune(beforeMs: number, limit: number): Promise<number>;
}

export function createSubjectFactStore(pg: Pg): SubjectFactStore {
  return {
    async seen(facts, sinceMs) {
      if (facts.length === 0) return new Map();
      const rows = await pg.sql<{ fact: string; seen_ms: string }>(
        `select fact, (extract(epoch from seen_at) * 1000)::bigint::text as seen_ms from subject_facts
          where fact = any($1::text[]) and seen_at >= $2`,
        [facts, new Date(sinceMs)],
      );
      return new Map(rows.map((r) => [r.fact, Number(r.seen_ms)]));
    },
    async record(facts, atMs) {
      if (facts.length === 0) return;
      await pg.sql(
        `insert into subject_facts (fact, seen_at) select unnest($1::text[]), $2
           on conflict (fact) do update set seen_at = greatest(subject_facts.seen_at, excluded.seen_at)`,
        [facts, new Date(atMs)],
      );
    },
    async prune(beforeMs, limit) {
      const rows = await pg.sql(
        `delete from subject_facts where fact in
           (select fact from subject_facts where seen_at < $1 order by seen_at limit $2) returning fact`,
        [new Date(beforeMs), limit],
      );
      return rows.length;
    },
  };
}
