import type { BenchCluster } from "../bench-cluster.ts";

/**
 * The first `count` replicas of `cluster` as a cluster of their own: its target names only them,
 * and its CPU accounting counts only them (and the stores). The other replicas keep running, idle;
 * their background work (health checks, the outbox drainer) is left out of the figures.
 */
export function clusterView(cluster: BenchCluster, count: number): BenchCluster {
  const replicas = cluster.replicas.slice(0, count);
  const pids = new Set(replicas.map((r) => r.pid ?? 0));
  return {
    ...cluster,
    replicas,
    target: `ipv4:${replicas.map((r) => r.address).join(",")}`,
    async cpu() {
      const all = await cluster.cpu();
      return { ...all, replicas: new Map([...all.replicas].filter(([pid]) => pids.has(pid))) };
    },
    memory: () => cluster.memory().filter((m) => replicas.some((r) => r.id === m.id)),
  };
}
