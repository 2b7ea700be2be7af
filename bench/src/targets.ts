import type {
  ClusterResult,
  KeycloakComparison,
  OfflineVerifySummary,
  RateFigures,
  TargetResult,
} from "./bench-result.ts";
import type { OfflineVerifyResult } from "./offline-verify.ts";

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

/** The targets, judged from this run's figures. */
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
