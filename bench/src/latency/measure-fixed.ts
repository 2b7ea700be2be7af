import { type CpuSnapshot, cpuUsed } from "../bench-cluster.ts";
import { summarizeLatency } from "../latency-summary.ts";
import { cpuSeconds, machineBusySeconds } from "../process-stats.ts";
import type { FixedRequest } from "./fixed-requests.ts";
import { probeGrpc } from "./grpc-body.ts";
import { runH2load, sendLag } from "./h2load.ts";
import type { LatencyPhase, LatencyScenario } from "./latency-phase.ts";

/** How h2load drives a fixed-request scenario; times in seconds. */
export interface FixedPlan {
  warmupSeconds: number;
  saturationSeconds: number;
  rateSeconds: number;
  fractions: number[];
  /** Saturation: connections and streams in flight per connection (64 in flight at 2 x 32). */
  saturation: { clients: number; streams: number };
  /** Open loop: connections, each sending `rate / clients` per second; streams allowed in flight per
   * connection, far above what the rate needs, so h2load never waits for a free stream. */
  open: { clients: number; streams: number };
  /** h2load's cores (`taskset -c`). */
  cpuList: string | undefined;
}

/**
 * One fixed-request scenario against one server (a replica's address and CPU) with h2load: a probe (its grpc-status must be 0),
 * an unmeasured warm-up, a closed-loop saturation, then open loop at `fractions` of its throughput.
 * CPU per call comes from /proc as in the main bench; h2load's own from this process's reaped
 * children (h2load is the only child that exits during a phase).
 */
export async function measureFixed(
  server: { address: string; cpu(): Promise<CpuSnapshot> },
  /** What h2load repeats; `scenario` names the result. `answerBytes`: what a successful answer's
   * DATA bytes are counted as, where they vary (default: the probe's). */
  request: Pick<FixedRequest, "path" | "body"> & { scenario: string; answerBytes?: number },
  headers: Record<string, string>,
  plan: FixedPlan,
  /** Offered rates per second for the open-loop phases instead of `plan.fractions` of this
   * scenario's own saturation (the bare server runs at the no-op's rates). */
  offered?: number[],
): Promise<LatencyScenario> {
  const { address } = server;
  const probe = await probeGrpc(address, request.path, request.body, headers);
  if (probe.grpcStatus !== "0")
    throw new Error(
      `${request.scenario}: the prepared request is answered ${probe.grpcStatus} ${probe.grpcMessage}`,
    );
  const notes: string[] = [];
  const commands: string[] = [];
  const phase = async (seconds: number, fraction: number, ratePerSecond?: number): Promise<LatencyPhase> => {
    const shape = ratePerSecond === undefined ? plan.saturation : plan.open;
    const before = await server.cpu();
    const own = cpuSeconds(process.pid);
    const machineBefore = machineBusySeconds();
    const withChildren = cpuSeconds(process.pid, true);
    const run = await runH2load({
      address,
      path: request.path,
      body: request.body,
      headers,
      ...shape,
      seconds,
      ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
      ...(plan.cpuList === undefined ? {} : { cpuList: plan.cpuList }),
    });
    commands.push(run.command);
    const used = cpuUsed(before, await server.cpu());
    const machine = machineBusySeconds() - machineBefore;
    const bench = cpuSeconds(process.pid) - own;
    const generator = cpuSeconds(process.pid, true) - withChildren - (cpuSeconds(process.pid) - own);
    // gRPC answers errors with HTTP 200 and no body: a body per 2xx answer is a successful call.
    const withBody = Math.min(
      run.status2xx,
      Math.round(run.dataBytes / (request.answerBytes ?? probe.bodyBytes)),
    );
    if (withBody < run.status2xx)
      notes.push(`${run.status2xx - withBody} answers with no body (gRPC errors) at ${fraction * 100}%`);
    const calls = withBody;
    const perCall = (s: number) => (calls > 0 ? (s / calls) * 1e6 : Number.NaN);
    return {
      kind: ratePerSecond === undefined ? "closed" : "open",
      fraction,
      offeredPerSecond: ratePerSecond ?? run.requestsPerSecond,
      throughput: calls / run.seconds,
      calls,
      // Answers after the end count in status2xx but not in done: non-2xx is what done has beyond them.
      failures: run.status2xx - withBody + Math.max(0, run.done - run.status2xx) + run.failed,
      latency: summarizeLatency([run.latenciesMs]),
      cpuMicrosPerCall: {
        server: perCall(used.replicas),
        stores: perCall(used.stores),
        generator: perCall(generator),
      },
      otherCores: Math.max(0, machine - used.replicas - used.stores - generator - bench) / run.seconds,
      ...(ratePerSecond === undefined ? {} : { sendLagMs: sendLag(run.startsMs, ratePerSecond) }),
    };
  };
  if (plan.warmupSeconds > 0) await phase(plan.warmupSeconds, 1);
  const saturation = await phase(plan.saturationSeconds, 1);
  const rates: LatencyPhase[] = [];
  for (const [i, fraction] of plan.fractions.entries())
    rates.push(await phase(plan.rateSeconds, fraction, offered?.[i] ?? saturation.throughput * fraction));
  return { scenario: request.scenario, driver: "h2load", saturation, rates, commands, notes };
}
