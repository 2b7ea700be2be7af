import { freePort } from "@stepgate/testkit/free-port";
import type { BenchCluster } from "../bench-cluster.ts";
import type { BenchUser } from "../seed-users.ts";
import { startBareHttp2 } from "./bare-http2.ts";
import { type FixedRequest, prepareFixedRequests } from "./fixed-requests.ts";
import { grpcHeaders, probeGrpc } from "./grpc-body.ts";
import type { LatencyOptions } from "./latency-options.ts";
import type { LatencyScenario } from "./latency-phase.ts";
import { measureFixed } from "./measure-fixed.ts";
import { measureNode } from "./measure-node.ts";
import { caller, startWarmWorkers } from "./warm-workers.ts";

/**
 * The machine's floor: the no-op's request, from h2load as the no-op had it, to a bare node:http2
 * server on the replicas' core that answers what the no-op answers, at the no-op's offered rates.
 * What the no-op's tail has beyond it is Stepgate's gRPC path (grpc-js, the bridge, the wrapper).
 */
async function measureBare(
  replicaAddress: string,
  noop: FixedRequest,
  measured: LatencyScenario,
  options: LatencyOptions,
  log: (line: string) => void,
): Promise<LatencyScenario> {
  const answer = await probeGrpc(replicaAddress, noop.path, noop.body, grpcHeaders(caller));
  const bare = await startBareHttp2(await freePort(), answer.body, options.cores.replicas);
  try {
    const offered = measured.rates.map((r) => r.offeredPerSecond);
    const s = await measureFixed(bare, noop, grpcHeaders(caller), options.fixed, offered);
    log(
      `  bare-http2 (h2load): saturation ${Math.round(s.saturation.throughput)}/s, p99 at 25% ${s.rates[0]?.latency.p99.toFixed(2)} ms`,
    );
    return { ...s, scenario: "bare-http2", notes: [...s.notes, "open loop at the no-op's offered rates"] };
  } finally {
    await bare.close();
  }
}

/**
 * Part 1 on one replica: every fixed-request scenario from h2load (skipped when `h2load` is
 * undefined), then Verify from `options.verifyWorkers` Node generators. `fixedUser` serves the
 * elevated session; `users` are Verify's.
 */
export async function measureLatencyPart(
  cluster: BenchCluster,
  fixedUser: BenchUser,
  users: BenchUser[],
  options: LatencyOptions,
  h2load: string | undefined,
  log: (line: string) => void,
): Promise<LatencyScenario[]> {
  const scenarios: LatencyScenario[] = [];
  if (h2load !== undefined) {
    const requests = await prepareFixedRequests(cluster.target, caller, fixedUser);
    const replica = { address: cluster.replicas[0]?.address ?? "", cpu: () => cluster.cpu() };
    for (const request of requests.filter((r) => options.fixedScenarios.includes(r.scenario))) {
      const s = await measureFixed(replica, request, grpcHeaders(caller), options.fixed);
      log(
        `  ${s.scenario} (h2load): saturation ${Math.round(s.saturation.throughput)}/s, p99 at 25% ${s.rates[0]?.latency.p99.toFixed(2)} ms`,
      );
      scenarios.push(s);
      if (request.scenario === "noop")
        scenarios.unshift(await measureBare(replica.address, request, s, options, log));
    }
  }
  const workers = await startWarmWorkers(
    options.verifyWorkers,
    options.cores.generators,
    cluster.target,
    users,
    {
      concurrency: options.plan.concurrency,
      durationMs: options.plan.initialWarmupMs,
    },
  );
  try {
    const verify = await measureNode(cluster, workers, "verify", options.plan, 500, log);
    log(
      `  verify (${workers.size} Node generators): saturation ${Math.round(verify.saturation.throughput)}/s`,
    );
    scenarios.push(verify);
  } finally {
    await workers.close();
  }
  return scenarios;
}
