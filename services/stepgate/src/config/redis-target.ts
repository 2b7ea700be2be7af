import { ConfigError } from "./config-error.ts";

/** One Redis Sentinel's address. */
export interface SentinelAddress {
  host: string;
  /** TCP port; Sentinel's default is 26379. */
  port: number;
}

/**
 * Where the hot state's Redis is: one server by URL, or the primary that a set of Redis Sentinels
 * monitor under a master name (https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/),
 * asked for again on every (re)connection, so a failover moves Stepgate to the promoted replica.
 */
export type RedisTarget =
  | { kind: "url"; url: string }
  | {
      kind: "sentinel";
      /** The sentinels asked, in order, for the primary's address; at least one. */
      sentinels: SentinelAddress[];
      /** The name the sentinels monitor the primary under (`sentinel monitor <name> ...`). */
      masterName: string;
      /** ACL user and password of the Redis servers (primary and replicas), if they need one. */
      username: string | undefined;
      password: string | undefined;
      /** ACL user and password of the sentinels themselves, if they need one. */
      sentinelUsername: string | undefined;
      sentinelPassword: string | undefined;
      /** TLS to the Redis servers and the sentinels. */
      tls: boolean;
    };

/** The environment keys a Redis target is read from (see `redisTargetOf`). */
export interface RedisEnv {
  REDIS_URL?: string | undefined;
  REDIS_SENTINELS?: string | undefined;
  REDIS_SENTINEL_MASTER: string;
  REDIS_USERNAME?: string | undefined;
  REDIS_PASSWORD?: string | undefined;
  REDIS_SENTINEL_USERNAME?: string | undefined;
  REDIS_SENTINEL_PASSWORD?: string | undefined;
  REDIS_TLS: boolean;
}

/**
 * The Redis target from the environment: `REDIS_URL` (one server), or `REDIS_SENTINELS`
 * (`host:port,host:port`, port default 26379) with `REDIS_SENTINEL_MASTER` and optional
 * `REDIS_USERNAME`/`REDIS_PASSWORD` (the servers), `REDIS_SENTINEL_USERNAME`/`REDIS_SENTINEL_PASSWORD`
 * (the sentinels) and `REDIS_TLS`; undefined when neither is set (hot state in PostgreSQL).
 * Throws a ConfigError when both are set or an address does not parse; values stay out of messages.
 */
export function redisTargetOf(e: RedisEnv): RedisTarget | undefined {
  if (e.REDIS_SENTINELS === undefined)
    return e.REDIS_URL === undefined ? undefined : { kind: "url", url: e.REDIS_URL };
  if (e.REDIS_URL !== undefined) {
    throw new ConfigError(
      "REDIS_URL and REDIS_SENTINELS cannot both be set: name one server or the sentinels",
    );
  }
  return {
    kind: "sentinel",
    sentinels: e.REDIS_SENTINELS.split(",").map((entry, i) => sentinelAddressOf(entry.trim(), i)),
    masterName: e.REDIS_SENTINEL_MASTER,
    username: e.REDIS_USERNAME,
    password: e.REDIS_PASSWORD,
    sentinelUsername: e.REDIS_SENTINEL_USERNAME,
    sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    tls: e.REDIS_TLS,
  };
}

/** `host:port` or `host` (port 26379); `[v6]:port` for IPv6. Throws a ConfigError naming the entry's position. */
function sentinelAddressOf(entry: string, index: number): SentinelAddress {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(entry);
  const port = match?.[3] === undefined ? 26379 : Number(match[3]);
  const host = match?.[1] ?? match?.[2];
  if (host === undefined || port < 1 || port > 65535) {
    throw new ConfigError(`REDIS_SENTINELS: entry ${index + 1} is not host[:port]`);
  }
  return { host, port };
}
