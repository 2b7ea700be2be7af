import type {
  ClusterResult,
  KeycloakComparison,
  OfflineVerifySummary,
  RateFigures,
  TargetResult,
} from "./bench-result.ts";
import type { OfflineVerifyResult } from "./offline-verify.ts";
import type { OverloadResult } from "./overload.ts";

const median = (list: number[]) => list.toSorted((a, b) => a - b)[Math.floor(list.length / 2)] ?? Number.NaN;

function rate(micros: number[]): RateFigures {
  return {
    bestPerSecond: 1e6 / Math.min(...micros),
    medianPerSecond: 1e6 / median(micros),
    microsPerRound: micros,
  };
}

export function summarizeOfflineVerify(r: OfflineVerifyResult): OfflineVerifySummary {
  const ratios = r.rawMicros.map((raw, i) => raw / (r.firstSeenMicros[i] ?? Number.POSITIVE_INFINITY));
  return {
    grants: r.grants,
    tokenChars: r.tokenChars,
    rounds: r.rounds,
    raw: rate(r.rawMicros),
    firstSeen: rate(r.firstSeenMicros),
    cached: rate(r.cachedMicros),
    firstSeenOverRaw: {
      median: median(ratios),
      best: Math.min(...r.rawMicros) / Math.min(...r.firstSeenMicros),
    },
  };
}

/** The no-op call's server CPU per call: the mean of its measurements before and after the others. */
export function noopBaseline(c: ClusterResult): number | undefined {
  const runs = [c.scenarios.find((s) => s.scenario === "noop"), c.noopAgain].flatMap((s) =>
    s === undefined ? [] : [s.saturation.cpuMicrosPerCall.server],
  );
  return runs.length === 0 ? undefined : runs.reduce((a, b) => a + b, 0) / runs.length;
}

const fixed = (n: number, digits = 2) => (Number.isFinite(n) ? n.toFixed(digits) : "n/a");

/** The issue's targets, judged from this run's figures. */
export function evaluateTargets(
  clusters: ClusterResult[],
  offline: OfflineVerifySummary | undefined,
): TargetResult[] {
  const targets: TargetResult[] = [];
  for (const c of clusters) {
    const find = (name: string) => c.scenarios.find((s) => s.scenario === name);
    const noop = noopBaseline(c);
    const ratio = (name: string, limit: number, label: string) => {
      const s = find(name);
      if (s === undefined || noop === undefined) return;
      const r = s.saturation.cpuMicrosPerCall.server / noop;
      targets.push({
        name: `${label} server CPU per call`,
        replicas: c.replicas,
        target: `<= ${limit}x no-op`,
        measured: `${fixed(r)}x (${fixed(s.saturation.cpuMicrosPerCall.server, 0)} vs ${fixed(noop, 0)} µs)`,
        met: r <= limit,
      });
    };
    ratio("verify", 4, "Verify");
    ratio("stepup-elevated", 2, "StepUp from an elevation");
    const half = find("verify")?.rates.find((r) => r.load.kind === "open" && r.load.fraction === 0.5);
    if (half) {
      targets.push({
        name: "Verify p99 at half of saturation",
        replicas: c.replicas,
        target: "< 10 ms",
        measured: `${fixed(half.latency.p99)} ms (${half.latency.count} calls)`,
        met: half.latency.p99 < 10,
      });
    }
    if (c.overload) targets.push(...overloadTargets(c.overload, c.replicas));
  }
  if (offline) {
    targets.push({
      name: "offline verifyGrant, first seen",
      target: ">= 90% of raw Ed25519 verify",
      measured: `${fixed(offline.firstSeenOverRaw.median * 100, 1)}% (median of rounds)`,
      met: offline.firstSeenOverRaw.median >= 0.9,
    });
    targets.push({
      name: "offline verifyGrant, cached",
      target: ">= 200,000/s",
      measured: `${Math.round(offline.cached.medianPerSecond).toLocaleString("en-US")}/s (median round)`,
      met: offline.cached.medianPerSecond >= 200_000,
    });
  }
  return targets;
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const count = (n: number) => n.toLocaleString("en-US");

/** The overload scenario's goals: critical flows pass and stay fast, refusals say when to retry,
 * the replicas hold, and throughput returns once the flood stops. */
export function overloadTargets(o: OverloadResult, replicas: number): TargetResult[] {
  const flood = o.criticalUnderFlood;
  const ended = flood.calls + flood.failures;
  const success = ended > 0 ? flood.calls / ended : Number.NaN;
  const ratio = flood.latency.p99 / o.baseline.latency.p99;
  const refused = o.refusals.shed + o.refusals.limited;
  const withRetryInfo = o.refusals.shedWithRetryInfo + o.refusals.limitedWithRetryInfo;
  const memory = o.memory.replicas.map((m) => ({ ...m, ratio: m.floodPeakBytes / m.unloadedPeakBytes }));
  const worst = memory.reduce<(typeof memory)[number] | undefined>(
    (a, m) => (a === undefined || !(a.ratio >= m.ratio) ? m : a),
    undefined,
  );
  const recovered = o.recovery.recoveredAfterMs;
  return [
    {
      name: "overload: critical flows succeed under the flood",
      replicas,
      target: ">= 99.9%",
      measured:
        `${fixed(success * 100, 2)}% (${count(flood.calls)} of ${count(ended)}` +
        `${flood.unstarted > 0 ? `; ${count(flood.unstarted)} not started, no user free` : ""})`,
      met: success >= 0.999,
    },
    {
      name: "overload: critical flow p99 under the flood",
      replicas,
      target: "<= 2x p99 without it",
      measured: `${fixed(ratio)}x (${fixed(flood.latency.p99, 1)} vs ${fixed(o.baseline.latency.p99, 1)} ms)`,
      met: ratio <= 2,
    },
    {
      name: "overload: shed and rate-limited calls with RetryInfo",
      replicas,
      target: "all",
      measured: `${count(withRetryInfo)} of ${count(refused)} (${count(o.refusals.shed)} shed, ${count(o.refusals.limited)} rate-limited)`,
      met: withRetryInfo === refused,
    },
    {
      name: "overload: no replica crashed",
      replicas,
      target: "all running",
      measured:
        o.replicasDown.length === 0
          ? `${replicas} of ${replicas} running`
          : `down: ${o.replicasDown.map((r) => `${r.id} (${r.exit})`).join(", ")}`,
      met: o.replicasDown.length === 0,
    },
    {
      name: "overload: replica peak memory under the flood",
      replicas,
      target: "<= 1.5x unloaded peak",
      measured:
        worst === undefined
          ? "n/a"
          : `${fixed(worst.ratio)}x (${worst.id}: ${mib(worst.floodPeakBytes)} vs ${mib(worst.unloadedPeakBytes)}` +
            `${o.memory.peakReset ? "" : ", VmHWM not reset: peaks since start"})`,
      met: worst !== undefined && worst.ratio <= 1.5,
    },
    {
      name: "overload: ListFactors throughput back after the flood",
      replicas,
      target: "<= 5 s",
      measured:
        recovered === null
          ? `not within ${fixed(o.plan.recoveryMs / 1000, 1)} s`
          : `${fixed(recovered / 1000)} s (>= ${count(Math.round(o.recovery.thresholdPerSecond))}/s)`,
      met: recovered !== null && recovered <= 5000,
    },
  ];
}

/** Verify per core, three ways, for the comparison with Keycloak's sizing. */
export function compareWithKeycloak(clusters: ClusterResult[], cores: number): KeycloakComparison[] {
  return clusters.flatMap((c) => {
    const v = c.scenarios.find((s) => s.scenario === "verify");
    if (!v) return [];
    const cpu = v.saturation.cpuMicrosPerCall;
    return [
      {
        replicas: c.replicas,
        verifyPerReplicaCore: 1e6 / cpu.server,
        verifyPerServiceCore: 1e6 / (cpu.server + cpu.stores),
        verifyPerMachineCore: v.saturation.throughput / cores,
      },
    ];
  });
}
