import type { StoredRevocation } from "../domain/revocation.ts";
import type { RevocationLog } from "../store/revocation-log.ts";

/** How this replica follows the revocation log. */
export interface RevocationFeedOptions {
  log: Pick<RevocationLog, "after" | "head" | "prune">;
  /** How often the log is read for new rows, in ms (default 100): the feed's added latency at most. */
  pollMs?: number;
  /** New revocations kept in memory for subscribers that are nearly current (default 4096). */
  memoryEvents?: number;
  /** Most rows one read returns (default 500). */
  pageSize?: number;
  /** How often expired rows are deleted, in ms (default 60000); every replica may, it is idempotent. */
  pruneEveryMs?: number;
  /** Told of a failed read other than PostgreSQL being down (it is tried again next poll). */
  onError?: (error: unknown) => void;
  /** The service's clock, which revocations expire by (default Date.now); lag is always in real time. */
  now?: () => number;
}

/** One page for a subscriber: revocations after its cursor, and how current the feed was. */
export interface FeedPage {
  revocations: StoredRevocation[];
  /** The cursor after this page. */
  cursor: bigint;
  /** Until when (ms since the epoch) this replica had read every committed revocation. */
  asOfMs: number;
  /** True when nothing after `cursor` up to `asOfMs` was left out (the page was not full). */
  caughtUp: boolean;
}

/**
 * This replica's view of the revocation log: it polls the log for rows after the last one it
 * holds, keeps the newest in memory, and wakes every waiting subscriber when rows arrive. A
 * subscriber behind the memory window is served from PostgreSQL. Polling by primary key (a few
 * hundred microseconds per poll, nothing returned) was chosen over LISTEN/NOTIFY: it needs no
 * connection of its own to keep and re-listen on after a failover, and bounds the latency alike.
 */
export interface RevocationFeed {
  /**
   * Up to a page of unexpired revocations after `cursor`, in order; rejects when PostgreSQL does.
   * `fresh` reads PostgreSQL itself rather than this replica's last poll: a new subscriber's first
   * page holds every revocation committed before it asked (up to `pollMs` newer than memory).
   */
  page(cursor: bigint, fresh?: boolean): Promise<FeedPage>;
  /** Resolves when new revocations arrived, after `timeoutMs`, or when `signal` aborts. */
  changed(timeoutMs: number, signal: AbortSignal): Promise<void>;
  /** The last cursor this replica read (0 before the first read). */
  readonly head: bigint;
  /** Until when this replica had read every committed revocation (0 before the first read). */
  readonly asOfMs: number;
  stop(): void;
}

export function startRevocationFeed(options: RevocationFeedOptions): RevocationFeed {
  const { log } = options;
  const now = options.now ?? Date.now;
  const pollMs = options.pollMs ?? 100;
  const memoryEvents = options.memoryEvents ?? 4096;
  const pageSize = options.pageSize ?? 500;
  const pruneEveryMs = options.pruneEveryMs ?? 60_000;
  // The newest revocations, in order; `memoryFrom` is the cursor just before the first of them.
  const recent: StoredRevocation[] = [];
  let memoryFrom: bigint | undefined;
  let head = 0n;
  let asOfMs = 0;
  let prunedAt = 0;
  let stopped = false;
  // Subscribers waiting for news; each removes itself when woken, timed out or aborted.
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const done of [...waiters]) done();
  };

  const remember = (rows: StoredRevocation[]) => {
    recent.push(...rows);
    if (recent.length > memoryEvents) {
      const dropped = recent.splice(0, recent.length - memoryEvents);
      memoryFrom = dropped.at(-1)?.seq ?? memoryFrom;
    }
  };

  const poll = async () => {
    const readAt = now();
    // The lag subscribers see is measured in real time, whatever the service's clock says.
    const readAtWall = Date.now();
    if (memoryFrom === undefined) {
      // Start at the log's head: older rows are served from PostgreSQL when asked for.
      head = await log.head();
      memoryFrom = head;
    }
    let rows: StoredRevocation[];
    let arrived = 0;
    do {
      rows = await log.after(head, pageSize, readAt);
      if (rows.length > 0) {
        head = rows.at(-1)?.seq ?? head;
        arrived += rows.length;
        remember(rows);
      }
    } while (rows.length === pageSize);
    asOfMs = readAtWall;
    if (arrived > 0) wake();
    if (readAt - prunedAt >= pruneEveryMs) {
      prunedAt = readAt;
      await log.prune(readAt - 60_000, 1000);
    }
  };

  const loop = async () => {
    while (!stopped) {
      try {
        await poll();
      } catch (error) {
        options.onError?.(error);
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs).unref());
    }
  };
  void loop();

  // A page's cursor: its last revocation's, else this replica's head (what lies between expired).
  const pageOf = (revocations: StoredRevocation[], cursor: bigint, asOf: number): FeedPage => ({
    revocations,
    cursor: revocations.at(-1)?.seq ?? (cursor > head ? cursor : head),
    asOfMs: asOf,
    caughtUp: revocations.length < pageSize,
  });
  // `recent` is in seq order: the first one after `cursor` is found by bisection, not a scan.
  const recentAfter = (cursor: bigint, nowMs: number) => {
    let low = 0;
    let high = recent.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if ((recent[mid] as StoredRevocation).seq > cursor) high = mid;
      else low = mid + 1;
    }
    const page: StoredRevocation[] = [];
    for (let i = low; i < recent.length && page.length < pageSize; i++) {
      const r = recent[i] as StoredRevocation;
      if (r.expiresAtMs > nowMs) page.push(r);
    }
    return page;
  };

  return {
    async page(cursor, fresh = false) {
      const nowMs = now();
      const asOf = asOfMs;
      if (!fresh && memoryFrom !== undefined && cursor >= memoryFrom && asOf > 0) {
        return pageOf(recentAfter(cursor, nowMs), cursor, asOf);
      }
      const wallMs = Date.now();
      const revocations = await log.after(cursor, pageSize, nowMs);
      // A short page read PostgreSQL up to now.
      return pageOf(revocations, cursor, revocations.length < pageSize ? wallMs : asOf);
    },
    changed(timeoutMs, signal) {
      return new Promise((resolve) => {
        const done = () => {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        signal.addEventListener("abort", done, { once: true });
        waiters.add(done);
      });
    },
    get head() {
      return head;
    },
    get asOfMs() {
      return asOfMs;
    },
    stop() {
      stopped = true;
      wake();
    },
  };
}
