import type { FeedPage, RevocationFeed } from "./revocation-feed.ts";

export interface WatchRevocationsInput {
  /** Resume after this cursor; undefined: from the start (every unexpired revocation). */
  cursor: bigint | undefined;
  /** Aborts when the subscriber goes away, the call's deadline passes or the replica stops. */
  signal: AbortSignal;
}

/** One message for the subscriber: a page of revocations (none in a heartbeat) and the time it was sent. */
export interface WatchMessage extends FeedPage {
  sentAtMs: number;
}

/**
 * The feed for one subscriber: pages after its cursor as fast as it reads them, then each new
 * revocation as this replica reads it, and a heartbeat at least every `heartbeatMs` (ms) while
 * nothing is new. A page that cannot be read (PostgreSQL down) is tried again at the next
 * heartbeat; the heartbeat still goes out, with the older `asOfMs`, so the subscriber sees its lag
 * grow. Ends when `signal` aborts.
 */
export type WatchRevocations = (input: WatchRevocationsInput) => AsyncIterable<WatchMessage>;

export interface WatchRevocationsDeps {
  feed: Pick<RevocationFeed, "page" | "changed" | "asOfMs">;
  /** The longest silence, in ms (default 1000). */
  heartbeatMs?: number;
  /** Real time, for the heartbeat and `sentAtMs` (default Date.now): not the service's clock. */
  now?: () => number;
}

export function createWatchRevocations(deps: WatchRevocationsDeps): WatchRevocations {
  const heartbeatMs = deps.heartbeatMs ?? 1000;
  const now = deps.now ?? Date.now;
  return async function* watch({ cursor: start, signal }) {
    let cursor = start ?? 0n;
    let lastSentAt = 0;
    while (!signal.aborted) {
      // The first page is read from PostgreSQL: nothing committed before the call is missing from it.
      const page = await deps.feed.page(cursor, lastSentAt === 0).catch(() => undefined);
      const due = now() - lastSentAt >= heartbeatMs;
      if (page !== undefined && (page.revocations.length > 0 || due || lastSentAt === 0)) {
        // Never backwards: a resumed subscriber must not see an event twice.
        if (page.cursor > cursor) cursor = page.cursor;
        lastSentAt = now();
        yield { ...page, cursor, sentAtMs: lastSentAt };
        // A full page may have more behind it: read on at once.
        if (page.revocations.length > 0) continue;
      } else if (page === undefined && due) {
        lastSentAt = now();
        yield { revocations: [], cursor, asOfMs: deps.feed.asOfMs, caughtUp: false, sentAtMs: lastSentAt };
      }
      await deps.feed.changed(Math.max(1, heartbeatMs - (now() - lastSentAt)), signal);
    }
  };
}
