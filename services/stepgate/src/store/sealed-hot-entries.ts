import type { Redis } from "ioredis";
import { hotKeys } from "./hot-keys.ts";
import type { Pg } from "./sql.ts";

/** One live entry of the hot store as it was read: where it is, its key and its value. */
export interface HotEntry {
  readonly place: "redis" | "postgresql";
  readonly key: string;
  readonly value: string;
}

/** The kinds of hot-store entries that hold values sealed with the key ring. */
export type SealedHotKind = "challenge" | "verifyResult" | "factorCache";

/** Lists and swaps sealed hot-store entries, for the re-seal job; values stay opaque here. */
export interface SealedHotEntries {
  /**
   * Calls `visit` with each page (about `pageSize`) of live entries of `kind`, in Redis (when
   * configured) and in PostgreSQL's hot_entries (the hot state while Redis is absent or down).
   */
  scan(kind: SealedHotKind, pageSize: number, visit: (entries: HotEntry[]) => Promise<void>): Promise<void>;
  /** The claim that answered challenge `challengeId` (in `beside`'s place) and that claim's recorded Verify result. */
  answer(
    beside: HotEntry,
    challengeId: string,
  ): Promise<{ claim: string; result: HotEntry | undefined } | undefined>;
  /** Replaces the entry's value, keeping its expiry, only if it still holds what was read; true if replaced. */
  replace(entry: HotEntry, value: string): Promise<boolean>;
  /** Deletes the entry only if it still holds what was read; true if deleted. */
  drop(entry: HotEntry): Promise<boolean>;
}

export interface SealedHotEntriesOptions {
  pg: Pg;
  /** The hot store's Redis connection (its key prefix set), when Redis is configured. */
  redis: Redis | undefined;
  /** The key prefix of that connection. */
  redisPrefix: string;
}

// The kind each hot key starts with (store/hot-keys.ts), read off a key built there.
const kindOf = (key: string) => key.slice(0, key.indexOf(":") + 1);
const prefixes: Record<SealedHotKind, string> = {
  challenge: kindOf(hotKeys.challenge("")),
  verifyResult: kindOf(hotKeys.verifyResult("", "")),
  factorCache: kindOf(hotKeys.factorCache("")),
};

// Compare-and-swap and compare-and-delete in one step each.
const replaceScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') return 1 end
return 0`;
const dropScript = `
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0`;

const globEscaped = (s: string) => s.replace(/[*?[\]\\]/g, "\\$&");

export function createSealedHotEntries({
  pg,
  redis,
  redisPrefix,
}: SealedHotEntriesOptions): SealedHotEntries {
  const run = pg.sql;
  const scanRedis = async (
    r: Redis,
    prefix: string,
    pageSize: number,
    visit: (e: HotEntry[]) => Promise<void>,
  ) => {
    let cursor = "0";
    do {
      // SCAN's pattern and the keys it returns carry the connection's prefix; GET adds it itself.
      const [next, found] = await r.scan(
        cursor,
        "MATCH",
        `${globEscaped(redisPrefix + prefix)}*`,
        "COUNT",
        pageSize,
      );
      cursor = next;
      const keys = found.map((k) => k.slice(redisPrefix.length));
      const values = keys.length === 0 ? [] : await r.mget(keys);
      const entries = keys.flatMap((key, i) => {
        const value = values[i];
        return typeof value === "string" ? [{ place: "redis" as const, key, value }] : [];
      });
      if (entries.length > 0) await visit(entries);
    } while (cursor !== "0");
  };
  const scanPostgres = async (prefix: string, pageSize: number, visit: (e: HotEntry[]) => Promise<void>) => {
    let after = "";
    for (;;) {
      const rows = await run<{ key: string; value: string }>(
        `select key, value from hot_entries
         where key like $1 and key > $2 and value is not null and expires_at > now() order by key limit $3`,
        [`${prefix}%`, after, pageSize],
      );
      if (rows.length === 0) return;
      after = rows[rows.length - 1]?.key ?? after;
      await visit(rows.map((r) => ({ place: "postgresql" as const, key: r.key, value: r.value })));
    }
  };
  const read = async (place: HotEntry["place"], key: string): Promise<HotEntry | undefined> => {
    if (place === "redis") {
      const value = await redis?.get(key);
      return typeof value === "string" ? { place, key, value } : undefined;
    }
    const rows = await run<{ value: string | null }>(
      "select value from hot_entries where key = $1 and expires_at > now()",
      [key],
    );
    const value = rows[0]?.value;
    return typeof value === "string" ? { place, key, value } : undefined;
  };
  return {
    async scan(kind, pageSize, visit) {
      if (redis) await scanRedis(redis, prefixes[kind], pageSize, visit);
      await scanPostgres(prefixes[kind], pageSize, visit);
    },
    async answer(beside, challengeId) {
      const answered = await read(beside.place, hotKeys.answered(challengeId));
      if (!answered) return undefined;
      const claim = answered.value;
      return { claim, result: await read(beside.place, hotKeys.verifyResult(challengeId, claim)) };
    },
    async replace(entry, value) {
      if (entry.place === "redis") {
        return (await redis?.eval(replaceScript, 1, entry.key, entry.value, value)) === 1;
      }
      const rows = await run(
        "update hot_entries set value = $1 where key = $2 and value = $3 and expires_at > now() returning 1",
        [value, entry.key, entry.value],
      );
      return rows.length === 1;
    },
    async drop(entry) {
      if (entry.place === "redis") return (await redis?.eval(dropScript, 1, entry.key, entry.value)) === 1;
      const rows = await run("delete from hot_entries where key = $1 and value = $2 returning 1", [
        entry.key,
        entry.value,
      ]);
      return rows.length === 1;
    },
  };
}
