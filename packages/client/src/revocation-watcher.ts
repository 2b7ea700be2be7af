import { type Client, Code, ConnectError } from "@connectrpc/connect";
import { metrics } from "@opentelemetry/api";
import { callerHeader, type RevocationFeedService, RevocationKind } from "@stepgate/api";
import type { Revocation, RevocationSet } from "@stepgate/grant";

/** What an offline check does once the revocation feed is stale (see RevocationFeedOptions). */
export type WhenFeedStale = "check-online" | "fail-closed" | "keep-verifying";

/** The revocation feed subscription of `verifyGrant` (RevocationFeedService.WatchRevocations). */
export interface RevocationFeedOptions {
  /** Subscribe at all. Default true; false: offline checks cannot see revocations (valid until `exp`). */
  enabled?: boolean;
  /**
   * The feed counts as stale when its lag passes this, in ms (default 5000): the answering replica's
   * own lag behind PostgreSQL plus the time since its last message (heartbeats come every second).
   */
  staleAfterMs?: number;
  /**
   * What `verifyGrant` does while the feed is stale. "check-online" (the default): the grant is
   * checked offline, then with CheckGrant, which sees every revocation; "fail-closed": refused with
   * an Error("revocation feed stale"); "keep-verifying": checked offline only, as without a feed.
   */
  whenStale?: WhenFeedStale;
  /** How long the first `verifyGrant` waits for the feed's first catch-up, in ms (default 2000). */
  syncTimeoutMs?: number;
  /** Pause before reconnecting a lost stream, doubled per failure up to 2000 ms (default 100 ms). */
  reconnectMs?: number;
}

/** Where the subscription stands. */
export interface RevocationFeedStatus {
  /** True once a message brought the subscriber up to date; stays true across reconnects. */
  synced: boolean;
  /** The feed's lag in ms (see `staleAfterMs`); undefined before the first message. */
  lagMs: number | undefined;
  stale: boolean;
  /** The cursor a reconnect resumes from ("" before the first message). */
  cursor: string;
  /** Revocations received so far, over every reconnect. */
  received: number;
  /** Streams opened so far (1 plus the reconnects). */
  streams: number;
}

export interface RevocationWatcher {
  status(): RevocationFeedStatus;
  /** `status().stale` without building the status: asked on every verification. */
  stale(): boolean;
  /** Resolves once synced, or after `syncTimeoutMs` (whichever comes first). */
  synced(): Promise<void>;
  stop(): void;
}

const kindNames: Partial<Record<RevocationKind, Revocation["kind"]>> = {
  [RevocationKind.SESSION_ENDED]: "session_ended",
  [RevocationKind.FACTOR_ENDED]: "factor_ended",
  [RevocationKind.GRANT_CONSUMED]: "grant_consumed",
  [RevocationKind.KEY_RETIRED]: "key_retired",
};

/**
 * Subscribes to the revocation feed and adds each event to `set`, reconnecting (any replica the
 * channel picks) from the last cursor, so no event is missed and none is applied twice (adding one
 * again changes nothing either). Reports the lag as the gauge `stepgate.client.revocation_feed.lag`
 * (seconds) through the OpenTelemetry API: a no-op without an SDK.
 */
export function watchRevocations(
  feed: Client<typeof RevocationFeedService>,
  caller: string,
  set: RevocationSet,
  options: RevocationFeedOptions = {},
): RevocationWatcher {
  // Lag is measured on a monotonic clock: a wall clock that jumps must not make the feed look stale.
  const now = () => performance.now();
  const staleAfterMs = options.staleAfterMs ?? 5000;
  const syncTimeoutMs = options.syncTimeoutMs ?? 2000;
  const firstPauseMs = options.reconnectMs ?? 100;
  const stopping = new AbortController();
  let cursor = "";
  let synced = false;
  let received = 0;
  let streams = 0;
  // The replica's lag when its last message was sent, and when that message arrived (local ms).
  let remoteLagMs = 0;
  let arrivedAt: number | undefined;
  let onSynced: (() => void) | undefined;
  const syncedOnce = new Promise<void>((resolve) => {
    onSynced = resolve;
  });
  const lagMs = () => (arrivedAt === undefined ? undefined : remoteLagMs + (now() - arrivedAt));

  const gauge = metrics
    .getMeter("@stepgate/client")
    .createObservableGauge("stepgate.client.revocation_feed.lag", {
      unit: "s",
      description: "How far behind the revocations recorded in Stepgate this verifier's feed is",
    });
  const observe = (result: { observe(value: number, attributes?: Record<string, string>): void }) => {
    const lag = lagMs();
    if (lag !== undefined) result.observe(lag / 1000, { caller });
  };
  gauge.addCallback(observe);

  // Resolves true when the stream delivered at least one message before it ended.
  const follow = async () => {
    streams++;
    let delivered = false;
    const stream = feed.watchRevocations(
      { cursor },
      { signal: stopping.signal, headers: { [callerHeader]: caller } },
    );
    for await (const message of stream) {
      for (const r of message.revocations) {
        const kind = kindNames[r.kind];
        if (kind !== undefined) set.add({ kind, target: r.target, expiresAtMs: Number(r.expiresAtMs) });
        received++;
      }
      cursor = message.cursor;
      remoteLagMs = Math.max(0, Number(message.sentAtMs - message.asOfMs));
      arrivedAt = now();
      delivered = true;
      if (message.caughtUp && !synced) {
        synced = true;
        onSynced?.();
      }
    }
    return delivered;
  };

  void (async () => {
    let pauseMs = firstPauseMs;
    while (!stopping.signal.aborted) {
      let delivered = false;
      try {
        delivered = await follow();
      } catch (error) {
        // A server without the feed will not grow one: stop instead of asking forever.
        if (error instanceof ConnectError && error.code === Code.Unimplemented) return;
      }
      if (stopping.signal.aborted) return;
      // A stream that delivered something was healthy: reconnect soon; otherwise back off.
      pauseMs = delivered ? firstPauseMs : Math.min(2000, pauseMs * 2);
      await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
    }
  })();

  const stale = () => {
    const lag = lagMs();
    return !synced || lag === undefined || lag > staleAfterMs;
  };

  return {
    stale,
    status() {
      return {
        synced,
        lagMs: lagMs(),
        stale: stale(),
        cursor,
        received,
        streams,
      };
    },
    synced: () =>
      synced
        ? Promise.resolve()
        : Promise.race([
            syncedOnce,
            new Promise<void>((resolve) => setTimeout(resolve, syncTimeoutMs).unref()),
          ]),
    stop() {
      stopping.abort();
      gauge.removeCallback(observe);
    },
  };
}
