import { freePort } from "@stepgate/testkit/free-port";
import type { BenchCluster } from "../bench-cluster.ts";
import type { BenchUser } from "../seed-users.ts";
import { type BareKind, startBareServer } from "./bare-http2.ts";
import { type FixedRequest, prepareFixedRequests } from "./fixed-requests.ts";
import { grpcHeaders, probeGrpc } from "./grpc-body.ts";
import type { LatencyOptions } from "./latency-options.ts";
import type { LatencyScenario } from "./latency-phase.ts";
import { measureFixed } from "./measure-fixed.ts";
import { measureNode } from "./measure-node.ts";
import { caller, startWarmWorkers } from "./warm-workers.ts";

/**
 * The floors: the no-op's request, from h2load as the no-op had it, to a bare server on the
 * replicas' core that answers what the no-op answers, at the no-op's offered rates. `grpc-js`: a
 * grpc-js server whose handler does nothing, the floor every call's cost is a multiple of;
 * `http2`: node:http2 alone, the machine's. What the no-op has beyond grpc-js's is Stepgate's own.
 */
async function measureBare(
  kind: BareKind,
  replicaAddress: string,
  noop: FixedRequest,
  measured: LatencyScenario,
  options: LatencyOptions,
  log: (line: string) => void,
): Promise<LatencyScenario> {
  const answer = await probeGrpc(replicaAddress, noop.path, noop.body, grpcHeaders(caller));
  const bare = await startBareServer(kind, await freePort(), noop.path, answer.body, options.cores.replicas);
  try {
    const offered = measured.rates.map((r) => r.offeredPerSecond);
    const s = await measureFixed(bare, noop, grpcHeaders(caller), options.fixed, offered);
    const scenario = `bare-${kind}`;
    log(
      `  ${scenario} (h2load): saturation ${Math.round(s.saturation.throughput)}/s, p99 at 25% ${s.rates[0]?.latency.p99.toFixed(2)} ms`,
    );
    return { ...s, scenario, notes: [...s.notes, "open loop at the no-op's offered rates"] };
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
        for (const kind of ["http2", "grpc-js"] as const)
          scenarios.unshift(await measureBare(kind, replica.address, request, s, options, log));
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
