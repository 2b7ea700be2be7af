import type { Redis } from "ioredis";
import type { AuditEvent } from "./audit-store.ts";
import { keepConnecting } from "./hot/redis-connection.ts";
import { hotKeys } from "./hot-keys.ts";

/** One entry read from the outbox: its stream id (to acknowledge it) and what it holds. */
export type OutboxEntry =
  | { id: string; event: AuditEvent }
  /** Deleted from the stream while it was pending (e.g. trimmed at the cap): nothing is left to store. */
  | { id: string; event: "deleted" }
  /** Holds nothing this release reads as an event: it can never be stored. */
  | { id: string; event: "unreadable" };

/**
 * Audit events on their way to PostgreSQL: one Redis stream (`hotKeys.auditOutbox()`) that every
 * replica appends to and drains through one consumer group, each replica a consumer of its own.
 * An entry stays in the stream until a drainer acknowledges it, which it does only after the
 * events are committed in PostgreSQL. Every method rejects with the ioredis error when Redis does.
 */
export interface AuditOutbox {
  /** The cap on entries in the stream (see `AuditOutboxOptions.maxLength`). */
  readonly maxLength: number;
  /** Appends one event: one XADD on the shared connection, auto-pipelined with the call's other commands. */
  append(event: AuditEvent): Promise<void>;
  /**
   * Entries delivered to `consumer` and not acknowledged yet (left by a failed insert or a
   * restart under the same name), oldest first, at most `count`. Never blocks.
   */
  readPending(consumer: string, count: number): Promise<OutboxEntry[]>;
  /**
   * Entries no consumer has seen, at most `count`, now pending for `consumer`. Waits up to
   * `blockMs` (ms) for the first on a connection of its own; `blockMs` 0 answers at once.
   */
  readNew(consumer: string, count: number, blockMs: number): Promise<OutboxEntry[]>;
  /**
   * Moves to `consumer` up to `count` entries that have been pending, with any consumer, for at
   * least `minIdleMs` (ms): those of a replica that died holding them. Start with `cursor` "0-0"
   * and pass on the returned one; it is "0-0" again once the whole pending list was scanned.
   */
  claimStale(
    consumer: string,
    minIdleMs: number,
    count: number,
    cursor: string,
  ): Promise<{ cursor: string; entries: OutboxEntry[] }>;
  /** Acknowledges and deletes entries in one MULTI (XACK, XDEL): call it once they are stored. */
  acknowledge(ids: string[]): Promise<void>;
  /** How many entries the stream holds (XLEN). */
  length(): Promise<number>;
  /**
   * What waits to be stored: the entries the stream holds and when the oldest was appended (epoch
   * ms, from its stream id; undefined when the stream is empty). Stored entries are deleted, so
   * every entry left is one PostgreSQL does not have yet. One XLEN and one XRANGE, pipelined.
   */
  backlog(): Promise<{ entries: number; oldestAt: number | undefined }>;
  /**
   * Removes consumers that hold no pending entry and have been idle for at least `idleMs` (ms),
   * e.g. those of replicas gone for good; resolves with how many it removed.
   */
  forgetIdleConsumers(idleMs: number): Promise<number>;
  /** Closes the blocking-read connection: a read in progress rejects, later blocking reads too. */
  close(): Promise<void>;
}

export interface AuditOutboxOptions {
  /**
   * The cap on entries in the stream, a safety net for Redis's memory while PostgreSQL is down,
   * not a queue bound: XADD trims the oldest entries past it (`MAXLEN ~`, so a little more may stay),
   * stored or not, and trimmed events are lost. Default 1,000,000 entries, about 0.5 GB of Redis
   * memory at ~500 bytes an entry: at 1,000 events/s, over 15 minutes of PostgreSQL outage.
   */
  maxLength?: number;
}

/** The bound on one blocking read, in ms: above any block time the drainer uses (1000 ms by default). */
const blockingReadTimeoutMs = 30_000;

/** How long the first blocking read waits for its new connection, in ms; then it fails as usual. */
const firstConnectWaitMs = 2000;

/** The consumer group every replica's drainer reads through. */
const group = "audit-drainers";
/** The one field of an entry: the event as JSON (see `encodeAuditEvent`). */
const field = "e";

/**
 * The audit outbox on `redis`, the hot store's connection (`redisConnectionOf`), whose key prefix
 * it shares. Blocking reads use a duplicate of it, made at the first one, so they never hold up
 * the calls' commands. The consumer group is created, reading from the stream's start, when a
 * read finds it missing (first use, or the stream was lost).
 */
export function createAuditOutbox(redis: Redis, options: AuditOutboxOptions = {}): AuditOutbox {
  const key = hotKeys.auditOutbox();
  const maxLength = options.maxLength ?? 1_000_000;
  let blocking: Redis | undefined;
  let closed = false;
  let connected: Promise<void> | undefined;
  const blockingConnection = async () => {
    if (closed) throw new Error("audit outbox closed");
    if (!blocking) {
      // Its own command timeout: a blocking read waits up to its block time by design, longer than
      // the request connection's bound on one command.
      blocking = redis.duplicate({ enableAutoPipelining: false, commandTimeout: blockingReadTimeoutMs });
      blocking.on("error", () => {});
      // A duplicate shares the sentinel settings, so it can end for good after a failover too.
      keepConnecting(blocking, () => closed);
      // No offline queue: the first read would fail while the new connection is still being made.
      const made = blocking;
      connected = new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(done, firstConnectWaitMs);
        timer.unref();
        made.once("ready", done);
        made.once("end", done);
      });
    }
    await connected;
    return blocking;
  };
  const withGroup = async <T>(command: () => Promise<T>): Promise<T> => {
    try {
      return await command();
    } catch (error) {
      if (!String((error as Error).message).startsWith("NOGROUP")) throw error;
      await redis.xgroup("CREATE", key, group, "0", "MKSTREAM").catch((e: unknown) => {
        if (!String((e as Error).message).startsWith("BUSYGROUP")) throw e;
      });
      return command();
    }
  };
  return {
    maxLength,
    async append(event) {
      await redis.xadd(key, "MAXLEN", "~", String(maxLength), "*", field, encodeAuditEvent(event));
    },
    readPending: (consumer, count) =>
      withGroup(async () =>
        entriesOf(await redis.xreadgroup("GROUP", group, consumer, "COUNT", count, "STREAMS", key, "0")),
      ),
    readNew: (consumer, count, blockMs) =>
      withGroup(async () => {
        if (blockMs <= 0) {
          return entriesOf(
            await redis.xreadgroup("GROUP", group, consumer, "COUNT", count, "STREAMS", key, ">"),
          );
        }
        const reply = await (await blockingConnection()).xreadgroup(
          "GROUP",
          group,
          consumer,
          "COUNT",
          count,
          "BLOCK",
          Math.ceil(blockMs),
          "STREAMS",
          key,
          ">",
        );
        return entriesOf(reply);
      }),
    claimStale: (consumer, minIdleMs, count, cursor) =>
      withGroup(async () => {
        const [next, raw] = (await redis.xautoclaim(
          key,
          group,
          consumer,
          Math.max(0, Math.floor(minIdleMs)),
          cursor,
          "COUNT",
          count,
        )) as [string, RawEntry[]];
        return { cursor: next, entries: raw.map(entryOf) };
      }),
    async acknowledge(ids) {
      if (ids.length === 0) return;
      const replies = await redis
        .multi()
        .xack(key, group, ...ids)
        .xdel(key, ...ids)
        .exec();
      const failed = replies?.find(([error]) => error);
      if (!replies || failed) throw failed?.[0] ?? new Error("audit outbox acknowledgement discarded");
    },
    length: () => redis.xlen(key),
    async backlog() {
      const [entries, oldest] = await Promise.all([redis.xlen(key), redis.xrange(key, "-", "+", "COUNT", 1)]);
      const id = oldest[0]?.[0];
      return { entries, oldestAt: id === undefined ? undefined : Number(id.split("-")[0]) };
    },
    async forgetIdleConsumers(idleMs) {
      const consumers = (await redis.xinfo("CONSUMERS", key, group).catch((error: unknown) => {
        // No stream or no group yet: no consumers either.
        if (/^NOGROUP|no such key/i.test(String((error as Error).message))) return [];
        throw error;
      })) as unknown[][];
      let removed = 0;
      for (const info of consumers) {
        const fields = fieldMap(info);
        if (fields.get("pending") !== 0 || Number(fields.get("idle")) < idleMs) continue;
        await redis.xgroup("DELCONSUMER", key, group, String(fields.get("name")));
        removed++;
      }
      return removed;
    },
    async close() {
      closed = true;
      blocking?.disconnect();
      blocking = undefined;
    },
  };
}

type RawEntry = [id: string, fields: string[] | null];

function entriesOf(reply: unknown): OutboxEntry[] {
  const streams = reply as [key: string, entries: RawEntry[]][] | null;
  return (streams?.[0]?.[1] ?? []).map(entryOf);
}

function entryOf([id, fields]: RawEntry): OutboxEntry {
  if (fields === null) return { id, event: "deleted" };
  const at = fields.indexOf(field);
  const event = at >= 0 && at % 2 === 0 ? decodeAuditEvent(fields[at + 1] ?? "") : undefined;
  return event ? { id, event } : { id, event: "unreadable" };
}

/** XINFO's flat [name, value, name, value, ...] as a map. */
function fieldMap(flat: unknown[]): Map<string, unknown> {
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < flat.length; i += 2) map.set(String(flat[i]), flat[i + 1]);
  return map;
}

/** The event as the JSON an outbox entry holds; `at` in epoch ms. */
export function encodeAuditEvent(event: AuditEvent): string {
  return JSON.stringify({
    id: event.id,
    at: event.at.getTime(),
    type: event.type,
    subject: event.subject,
    caller: event.caller,
    replica: event.replica,
    details: event.details,
  });
}

/** The event `encodeAuditEvent` wrote; undefined for anything else. */
export function decodeAuditEvent(text: string): AuditEvent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  const optionalText = (x: unknown) => x === undefined || typeof x === "string";
  if (
    typeof v.id !== "string" ||
    v.id === "" ||
    typeof v.at !== "number" ||
    !Number.isFinite(v.at) ||
    typeof v.type !== "string" ||
    typeof v.replica !== "string" ||
    !optionalText(v.subject) ||
    !optionalText(v.caller) ||
    !(
      v.details === undefined ||
      (typeof v.details === "object" && v.details !== null && !Array.isArray(v.details))
    )
  ) {
    return undefined;
  }
  return {
    id: v.id,
    at: new Date(v.at),
    type: v.type,
    replica: v.replica,
    ...(typeof v.subject === "string" ? { subject: v.subject } : {}),
    ...(typeof v.caller === "string" ? { caller: v.caller } : {}),
    ...(v.details === undefined ? {} : { details: v.details as Record<string, unknown> }),
  };
}
