import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { type OwnRedis, startOwnRedis } from "./own-redis.ts";
import { createTcpProxy, type TcpProxy } from "./tcp-proxy.ts";

/** Options of `startSentinelRedis`; times are in ms. */
export interface SentinelRedisOptions {
  /** Sentinels monitoring the primary. Default 3 (quorum 2). */
  sentinels?: number;
  /** `sentinel down-after-milliseconds`: how long the primary may not answer before it is down. Default 1000. */
  downAfterMs?: number;
  /** `sentinel failover-timeout`. Default 6000. */
  failoverTimeoutMs?: number;
  /** How long the topology may take to form (the replica in sync, the sentinels aware of it and of
   * each other), in ms. Default 20_000. */
  readyTimeoutMs?: number;
}

/** A primary, a replica and Redis Sentinels on loopback, each a real process of its own. */
export interface SentinelRedis {
  /** The name the sentinels monitor the primary under. */
  readonly masterName: string;
  readonly primary: OwnRedis;
  readonly replica: OwnRedis;
  /** The replica's way to the primary: cut it (`cutReplication()`) and writes stop replicating,
   * as with a replica that lags behind at the moment the primary dies. */
  readonly replicationProxy: TcpProxy;
  readonly sentinels: OwnRedis[];
  /** `REDIS_SENTINELS` for Stepgate: `127.0.0.1:p1,127.0.0.1:p2,…`. */
  readonly sentinelList: string;
  /** The primary's port as the first answering sentinel names it (`SENTINEL get-master-addr-by-name`). */
  masterPort(): Promise<number | undefined>;
  /** `DBSIZE` of `node`, or undefined if it does not answer within 1 s. */
  keyCount(node: OwnRedis): Promise<number | undefined>;
  /**
   * Stops replication: the replica replicates through `replicationProxy` again, in sync, and the
   * proxy blackholes. (The sentinels point a replica straight at the primary failover-timeout after
   * they found it, +fix-slave-config, which would leave nothing to cut.) Rejects if the replica is
   * not in sync through the proxy within 10 s.
   */
  cutReplication(): Promise<void>;
  /** Kills everything and removes the folders. Idempotent; never rejects. */
  destroy(): Promise<void>;
}

/**
 * Starts a primary (`startOwnRedis`), a replica of it (`--replicaof` through `replicationProxy`) and
 * `sentinels` Redis Sentinels (`redis-server sentinel.conf --sentinel`) with quorum
 * `floor(sentinels / 2) + 1`, and resolves once the replica is in sync and every sentinel knows the
 * replica and the other sentinels. Rejects, having destroyed what it started, if that takes longer
 * than `readyTimeoutMs`.
 */
export async function startSentinelRedis(options: SentinelRedisOptions = {}): Promise<SentinelRedis> {
  const {
    sentinels: count = 3,
    downAfterMs = 1000,
    failoverTimeoutMs = 6000,
    readyTimeoutMs = 20_000,
  } = options;
  const masterName = "stepgate";
  const started: { destroy(): Promise<unknown> }[] = [];
  const destroyAll = async () => {
    for (const s of started.splice(0).reverse()) await s.destroy().catch(() => {});
  };
  const deadline = Date.now() + readyTimeoutMs;
  try {
    const primary = await startOwnRedis();
    started.push(primary);
    const replicationProxy = await createTcpProxy({ target: { host: "127.0.0.1", port: primary.port } });
    started.push({ destroy: () => replicationProxy.close() });
    const replica = await startOwnRedis({
      args: ["--replicaof", "127.0.0.1", String(replicationProxy.port)],
    });
    started.push(replica);
    // The primary lists the replica by its own port, so the sentinels reach it directly.
    await until(deadline, async () =>
      (await info(replica.port, "replication")).includes("master_link_status:up"),
    );
    const quorum = Math.floor(count / 2) + 1;
    const sentinels: OwnRedis[] = [];
    for (let i = 0; i < count; i++) {
      const sentinel = await startOwnRedis({
        sentinelConfig: [
          `sentinel monitor ${masterName} 127.0.0.1 ${primary.port} ${quorum}`,
          `sentinel down-after-milliseconds ${masterName} ${downAfterMs}`,
          `sentinel failover-timeout ${masterName} ${failoverTimeoutMs}`,
          `sentinel parallel-syncs ${masterName} 1`,
        ],
      });
      started.push(sentinel);
      sentinels.push(sentinel);
    }
    // Sentinels find the replica in the primary's INFO and each other by hello messages (every 2 s).
    await until(deadline, async () => {
      for (const s of sentinels) {
        const [replicas, peers] = await Promise.all([
          command(s.port, ["SENTINEL", "REPLICAS", masterName]),
          command(s.port, ["SENTINEL", "SENTINELS", masterName]),
        ]);
        if (!Array.isArray(replicas) || replicas.length < 1) return false;
        if (!Array.isArray(peers) || peers.length < count - 1) return false;
      }
      return true;
    });
    let destroyed: Promise<void> | undefined;
    return {
      masterName,
      primary,
      replica,
      replicationProxy,
      sentinels,
      sentinelList: sentinels.map((s) => `127.0.0.1:${s.port}`).join(","),
      async masterPort() {
        for (const s of sentinels) {
          const answer = await command(s.port, ["SENTINEL", "GET-MASTER-ADDR-BY-NAME", masterName]);
          if (Array.isArray(answer) && answer.length === 2) return Number(answer[1]);
        }
        return undefined;
      },
      async keyCount(node) {
        const n = await command(node.port, ["DBSIZE"]);
        return typeof n === "number" ? n : undefined;
      },
      async cutReplication() {
        const viaProxy = `master_port:${replicationProxy.port}\r\n`;
        if (!(await info(replica.port, "replication")).includes(viaProxy)) {
          await command(replica.port, ["REPLICAOF", "127.0.0.1", String(replicationProxy.port)]);
        }
        await until(
          Date.now() + 10_000,
          async () => {
            const replication = await info(replica.port, "replication");
            return replication.includes(viaProxy) && replication.includes("master_link_status:up");
          },
          "the replica is not in sync through the replication proxy",
        );
        await replicationProxy.blackhole();
      },
      destroy: () => (destroyed ??= destroyAll()),
    };
  } catch (error) {
    await destroyAll();
    throw error;
  }
}

/** One command on a connection of its own, bounded to 1 s; undefined when it fails. */
async function command(port: number, args: string[]): Promise<unknown> {
  const client = new Redis({
    host: "127.0.0.1",
    port,
    lazyConnect: true,
    connectTimeout: 1000,
    commandTimeout: 1000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on("error", () => {});
  try {
    await client.connect();
    return await client.call(args[0] as string, ...args.slice(1));
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** `INFO <section>`, or "" when the server does not answer. */
async function info(port: number, section: string): Promise<string> {
  const text = await command(port, ["INFO", section]);
  return typeof text === "string" ? text : "";
}

/** Polls `check` every 100 ms until it holds; throws `failure` once `deadline` (epoch ms) passes. */
async function until(
  deadline: number,
  check: () => Promise<boolean>,
  failure = "Redis Sentinel topology did not form in time",
): Promise<void> {
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(failure);
    await sleep(100);
  }
}
