import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { AuditOutbox, OutboxEntry } from "../store/audit-outbox.ts";
import type { AuditEvent, AuditStore } from "../store/audit-store.ts";

export interface AuditDrainerOptions {
  outbox: AuditOutbox;
  store: Pick<AuditStore, "append">;
  /** This replica's consumer name in the outbox's group: its replica id. */
  consumer: string;
  /** Told of every failure (the events stay in the outbox and are retried); never throws into a flow. */
  onError: (error: unknown) => void;
  /** How long one read waits for new events, in ms. Default 1000. */
  blockMs?: number;
  /**
   * Entries pending this long with a consumer (a replica that died holding them) are taken over,
   * in ms. Default 30,000. A live replica's slow insert may be taken over too: stored once anyway.
   */
  claimAfterMs?: number;
  /** Events per read and per insert. Default 500. */
  batchSize?: number;
  /**
   * After a read that found fewer than `batchSize` new events, how long to let more gather before
   * the next read, in ms. Default 100. Each pass costs a read, an insert and an acknowledgement
   * whatever its size, so under load one pass per 100 ms stores dozens of events for the price of
   * one; the events wait in Redis (durable there), so waiting loses none. `flush()` never waits.
   */
  lingerMs?: number;
  /** The first pause after a failure, in ms; it doubles with each failure in a row. Default 100. */
  retryBaseMs?: number;
  /** The longest pause after a failure, in ms. Default 5000. */
  retryMaxMs?: number;
  /** How long `stop()` waits for an insert in flight, in ms. Default 2000. */
  stopTimeoutMs?: number;
}

/** Moves audit events from the outbox to PostgreSQL in the background. */
export interface AuditDrainer {
  /**
   * Stores now every event appended before the call: this replica's pending ones, the unread ones,
   * and those other consumers held longer than `claimAfterMs`. Rejects when a store does.
   */
  flush(): Promise<void>;
  /** Stops the loop: a blocked read ends at once, an insert in flight gets `stopTimeoutMs`. */
  stop(): Promise<void>;
}

/** How often the drainer looks for its outbox's size and for consumers to forget, in ms. */
const housekeepingIntervalMs = 60_000;
/** Consumers idle this long with nothing pending are removed from the group, in ms. */
const forgetConsumersAfterMs = 3_600_000;

/**
 * Starts draining `outbox` into `store`: each pass inserts a batch with one multi-row insert (an
 * event stored already is skipped) and acknowledges it only once the insert committed, so an event
 * is never lost to a crash at any point, and never stored twice. Each pass first retries what this
 * consumer holds unacknowledged (after a failure or a restart), takes over every `claimAfterMs / 2`
 * what other consumers held too long, then waits up to `blockMs` for new entries. A failure is
 * reported and retried after a growing pause; while PostgreSQL is down the events stay in Redis.
 */
export function startAuditDrainer(options: AuditDrainerOptions): AuditDrainer {
  const { outbox, consumer, onError } = options;
  const blockMs = options.blockMs ?? 1000;
  const claimAfterMs = options.claimAfterMs ?? 30_000;
  const batchSize = options.batchSize ?? 500;
  const lingerMs = options.lingerMs ?? 100;
  const retryBaseMs = options.retryBaseMs ?? 100;
  const retryMaxMs = options.retryMaxMs ?? 5000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 2000;
  const claimIntervalMs = Math.max(10, claimAfterMs / 2);
  let stopped = false;
  let wake = () => {};
  // At start, what a previous process under this name left unacknowledged.
  let ownPending = true;
  let claimCursor = "0-0";
  let nextClaimAt = 0;
  let nextHousekeepingAt = Date.now() + housekeepingIntervalMs;

  /** Stores and acknowledges `entries`; resolves with how many there were. */
  const store = async (entries: OutboxEntry[]): Promise<number> => {
    if (entries.length === 0) return 0;
    const { events, unreadable } = sortEntries(entries);
    if (events.length > 0) await options.store.append(events);
    await outbox.acknowledge(entries.map((e) => e.id));
    if (unreadable.length > 0) {
      onError(
        new Error(`audit outbox: ${unreadable.length} unreadable entries dropped (${unreadable.join(", ")})`),
      );
    }
    return entries.length;
  };

  const claimStale = async (): Promise<number> => {
    const claimed = await outbox.claimStale(consumer, claimAfterMs, batchSize, claimCursor);
    const moved = await store(claimed.entries);
    claimCursor = claimed.cursor;
    // A cursor not back at the start: more of the pending list to scan on the next pass.
    nextClaimAt = claimCursor === "0-0" ? Date.now() + claimIntervalMs : 0;
    return moved;
  };

  const houseKeep = async () => {
    nextHousekeepingAt = Date.now() + housekeepingIntervalMs;
    const length = await outbox.length();
    if (length >= outbox.maxLength / 2) {
      onError(
        new Error(
          `audit outbox holds ${length} entries of at most ${outbox.maxLength}: PostgreSQL is behind`,
        ),
      );
    }
    await outbox.forgetIdleConsumers(forgetConsumersAfterMs);
  };

  const pass = async () => {
    let moved = 0;
    if (ownPending) {
      const pending = await outbox.readPending(consumer, batchSize);
      moved += await store(pending);
      ownPending = pending.length >= batchSize;
    }
    if (Date.now() >= nextClaimAt) moved += await claimStale();
    if (Date.now() >= nextHousekeepingAt) await houseKeep();
    if (moved > 0 || stopped) return;
    const stored = await store(await outbox.readNew(consumer, batchSize, blockMs));
    if (stored > 0 && stored < batchSize) await pause(lingerMs);
  };

  /** Waits `ms`, or until `stop()`. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const run = async () => {
    let failures = 0;
    while (!stopped) {
      try {
        await pass();
        failures = 0;
      } catch (error) {
        // Whatever was read stays pending with this consumer: retry it first.
        ownPending = true;
        if (stopped) break;
        failures++;
        onError(error);
        await pause(retryDelayMs(failures, retryBaseMs, retryMaxMs));
      }
    }
  };
  // Outside any call's trace: a batch belongs to no single request.
  const running = context.with(ROOT_CONTEXT, run);

  return {
    async flush() {
      for (;;) {
        const pending = await outbox.readPending(consumer, batchSize);
        if ((await store(pending)) > 0) continue;
        if ((await store(await outbox.readNew(consumer, batchSize, 0))) === 0) break;
      }
      let cursor = "0-0";
      do {
        const claimed = await outbox.claimStale(consumer, claimAfterMs, batchSize, cursor);
        await store(claimed.entries);
        cursor = claimed.cursor;
      } while (cursor !== "0-0");
    },
    async stop() {
      stopped = true;
      wake();
      await outbox.close();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([running, new Promise((resolve) => (timer = setTimeout(resolve, stopTimeoutMs)))]);
      clearTimeout(timer);
    },
  };
}

/** The events of `entries` to store, each id once, and the ids of unreadable entries (deleted ones are neither). */
export function sortEntries(entries: OutboxEntry[]): { events: AuditEvent[]; unreadable: string[] } {
  const byId = new Map<string, AuditEvent>();
  const unreadable: string[] = [];
  for (const entry of entries) {
    if (entry.event === "unreadable") unreadable.push(entry.id);
    else if (entry.event !== "deleted") byId.set(entry.event.id, entry.event);
  }
  return { events: [...byId.values()], unreadable };
}

/**
 * The pause after the `failures`-th failure in a row, in ms: `baseMs` doubled for each failure
 * after the first, at most `maxMs`, then between half of that and all of it (`random` in [0, 1)),
 * so replicas that failed together do not retry in step.
 */
export function retryDelayMs(failures: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.max(0, failures - 1));
  return ceiling / 2 + (ceiling / 2) * random();
}
