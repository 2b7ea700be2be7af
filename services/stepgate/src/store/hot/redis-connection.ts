import { Redis, type RedisOptions } from "ioredis";
import type { RedisTarget } from "../../config/redis-target.ts";

/** What every hot-store connection shares, whatever the target; times in ms. */
export interface RedisConnectionSettings {
  /** Prepended to every key. */
  keyPrefix: string;
  /** How long one connection attempt (to a sentinel or a server) may take, in ms. */
  connectTimeoutMs: number;
  /** How long one command may take before it fails, in ms. */
  commandTimeoutMs: number;
}

/**
 * A connection to `target`: one server by URL, or, with Sentinel, the primary the sentinels name,
 * asked for again on every reconnection (ioredis' sentinel support). A failover is followed within
 * about 200 ms of Sentinel's announcement (`+switch-master`, `failoverDetector`), a node that turns
 * out to be a replica is left at its ready check, and a READONLY answer (the old primary, demoted
 * while connected) reconnects. Commands fail at once while disconnected: no offline queue. ioredis may
 * still give up after a failover: its owner keeps it connecting (`keepConnecting`).
 */
export function connectRedis(target: RedisTarget, settings: RedisConnectionSettings): Redis {
  const common = {
    keyPrefix: settings.keyPrefix,
    lazyConnect: false,
    // No queue while disconnected: a call fails at once and the breaker counts it, never waits.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: settings.connectTimeoutMs,
    // Reconnect every 200 ms at most (ioredis backs off to 2 s by default): until the client is
    // connected again, health probes cannot see that Redis is back and the hot state stays away.
    retryStrategy: (attempt: number) => Math.min(attempt * 50, 200),
    commandTimeout: settings.commandTimeoutMs,
    // TCP keepalive, so a connection to a vanished host is eventually noticed even when idle.
    keepAlive: 1000,
    // Commands issued in the same tick share one write and one round trip.
    enableAutoPipelining: true,
    // A demoted primary answers writes with READONLY: reconnect, so Sentinel names the new one.
    reconnectOnError: (error: Error) => error.message.startsWith("READONLY"),
  } satisfies RedisOptions;
  if (target.kind === "url") return new Redis(target.url, common);
  return new Redis({
    ...common,
    sentinels: target.sentinels,
    name: target.masterName,
    role: "master" as const,
    ...(target.username === undefined ? {} : { username: target.username }),
    ...(target.password === undefined ? {} : { password: target.password }),
    ...(target.sentinelUsername === undefined ? {} : { sentinelUsername: target.sentinelUsername }),
    ...(target.sentinelPassword === undefined ? {} : { sentinelPassword: target.sentinelPassword }),
    sentinelCommandTimeout: settings.connectTimeoutMs,
    sentinelRetryStrategy: (attempt: number) => Math.min(attempt * 50, 200),
    // Subscribe to the sentinels' +switch-master: reconnect when a failover ends, not at the next error.
    failoverDetector: true,
    ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
  });
}

/**
 * Makes `redis` connect again, 200 ms later, each time it ends while `closing()` is false, and
 * tells `onRestart`. ioredis ends for good (status "end", no retry left) when it is disconnected
 * while it asks a sentinel for the primary, which its failover detector does when a +switch-master
 * arrives in that window: the replica would then never reach the promoted primary.
 */
export function keepConnecting(redis: Redis, closing: () => boolean, onRestart?: () => void): void {
  redis.on("end", () => {
    if (closing()) return;
    onRestart?.();
    const timer = setTimeout(() => {
      // Rejected while already connecting, or again by the same race (then "end" comes again).
      if (!closing()) redis.connect().catch(() => {});
    }, 200);
    timer.unref();
  });
}
