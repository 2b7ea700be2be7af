import type { BenchResult, ClusterResult } from "./bench-result.ts";
import type { LatencySummary } from "./latency-summary.ts";
import { noopBaseline } from "./targets.ts";

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;
const num = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : "-");
const ms = (n: number) =>
  !Number.isFinite(n) ? "-" : n < 10 ? n.toFixed(2) : n < 100 ? n.toFixed(1) : n.toFixed(0);
const perSecond = (n: number) => `${Math.round(n).toLocaleString("en-US")}/s`;
const latency = (l: LatencySummary) => `${ms(l.p50)} ${ms(l.p99)} ${ms(l.p999)}`;

function table(rows: string[][], rightAligned: (column: number) => boolean): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((cell, i) => (rightAligned(i) ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

function clusterTable(c: ClusterResult): string {
  const noop = noopBaseline(c);
  const fractions = c.scenarios[0]?.rates.map((r) => (r.load.kind === "open" ? r.load.fraction : 0)) ?? [];
  const header = [
    "scenario",
    "sat/s",
    "server µs/call",
    "x noop",
    "stores µs/call",
    "gen µs/call",
    ...fractions.map((f) => `@${Math.round(f * 100)}%: p50 p99 p99.9 ms`),
    "failed",
  ];
  const measured = c.noopAgain ? [...c.scenarios, c.noopAgain] : c.scenarios;
  const rows = measured.map((s, i) => {
    const cpu = s.saturation.cpuMicrosPerCall;
    const failed = s.warmup.failures + s.saturation.failures + s.rates.reduce((n, r) => n + r.failures, 0);
    const unstarted = s.saturation.unstarted + s.rates.reduce((n, r) => n + r.unstarted, 0);
    return [
      i === c.scenarios.length ? "noop (again)" : s.scenario,
      num(s.saturation.throughput),
      num(cpu.server),
      noop === undefined ? "-" : num(cpu.server / noop, 2),
      num(cpu.stores),
      num(cpu.generators),
      ...(s.rates.length > 0 ? s.rates.map((r) => latency(r.latency)) : fractions.map(() => "")),
      unstarted > 0 ? `${failed} (${unstarted} ran dry)` : String(failed),
    ];
  });
  const phases = c.scenarios.flatMap((s) => [s.saturation, ...s.rates]);
  const others = phases.map((p) => p.cores.other);
  const openLoops = c.scenarios.flatMap((s) => s.rates);
  const meanOther =
    phases.reduce((sum, p) => sum + p.cores.other * p.seconds, 0) /
    phases.reduce((sum, p) => sum + p.seconds, 0);
  const peak = Math.max(...c.memory.map((m) => m.peakBytes));
  const memory = c.memory.map((m) => `${m.id} ${mib(m.peakBytes)} (RSS ${mib(m.rssBytes)})`).join(", ");
  return [
    `== ${c.replicas} replica${c.replicas > 1 ? "s" : ""}: ${c.seeding.users.toLocaleString("en-US")} users seeded in ${num(c.seeding.seconds, 1)} s, ${c.sessions} elevated sessions`,
    table([header, ...rows], (i) => i > 0),
    `peak memory of a replica: ${mib(peak)} (VmHWM; per replica: ${memory})`,
    `CPU of other processes on the machine during the measured phases: ${num(meanOther, 2)} cores on average, ` +
      `${num(Math.max(...others), 2)} at most`,
    `load generators' own event loop delay in the open-loop phases: p99 up to ${ms(Math.max(...openLoops.map((p) => p.generatorLoopDelayMs.p99)))} ms, ` +
      `max ${ms(Math.max(...openLoops.map((p) => p.generatorLoopDelayMs.max)))} ms (stalls of the generators, not of Stepgate)`,
  ].join("\n");
}

/** The run as text: a table per cluster size, offline verification, targets, and the notes. */
export function formatReport(r: BenchResult): string {
  const m = r.machine;
  const out = [
    `Stepgate bench${r.quick ? " (--quick)" : ""}: ${m.cpuModel}, ${m.cores} cores, ${mib(m.memoryBytes)}, node ${m.node}, ` +
      `${m.postgres.split(" on ")[0]}, Redis ${m.redis}, ${m.date}`,
    `  code: ${r.code.commit.slice(0, 12)}${r.code.uncommitted.length > 0 ? ` with uncommitted changes in ${r.code.uncommitted.join(", ")}` : ""}`,
    ...r.notes.map((n) => `  ${n}`),
    "",
  ];
  for (const c of r.clusters) out.push(clusterTable(c), "");
  const o = r.offlineVerify;
  if (o) {
    out.push(
      `== offline verifyGrant in @stepgate/client, one core: ${o.grants.toLocaleString("en-US")} distinct real grants of ${o.tokenChars} chars, ${o.rounds} rounds, per second of thread CPU (median round, best round)`,
      table(
        [
          [
            "raw node:crypto Ed25519 verify",
            perSecond(o.raw.medianPerSecond),
            perSecond(o.raw.bestPerSecond),
          ],
          [
            "verifyGrant, first seen",
            perSecond(o.firstSeen.medianPerSecond),
            perSecond(o.firstSeen.bestPerSecond),
          ],
          ["verifyGrant, cached", perSecond(o.cached.medianPerSecond), perSecond(o.cached.bestPerSecond)],
        ],
        (i) => i > 0,
      ),
      `first seen / raw: ${(o.firstSeenOverRaw.median * 100).toFixed(1)}% (median of per-round ratios), ${(o.firstSeenOverRaw.best * 100).toFixed(1)}% best rounds`,
      "",
    );
  }
  out.push(
    "== targets",
    table(
      [
        ["target", "replicas", "wanted", "measured", ""],
        ...r.targets.map((t) => [
          t.name,
          t.replicas === undefined ? "-" : String(t.replicas),
          t.target,
          t.measured,
          t.met ? "met" : "MISSED",
        ]),
      ],
      (i) => i === 1,
    ),
    "",
  );
  const [low, high] = r.keycloak.referencePerVcpu;
  for (const k of r.keycloak.stepgate) {
    out.push(
      `Verify per core, ${k.replicas} replica${k.replicas > 1 ? "s" : ""}: ${num(k.verifyPerReplicaCore)}/s per core of replica CPU, ` +
        `${num(k.verifyPerServiceCore)}/s counting PostgreSQL and Redis too, ${num(k.verifyPerMachineCore)}/s per machine core at saturation ` +
        `(generators included); Keycloak's sizing: ${low} to ${high} token refreshes/s per vCPU ` +
        `(${num(k.verifyPerServiceCore / high, 1)}x to ${num(k.verifyPerServiceCore / low, 1)}x that, replica and stores counted).`,
    );
  }
  out.push(
    `${r.failures === 0 ? "no call failed" : `${r.failures} calls FAILED`}; ${num(r.seconds)} s in all`,
  );
  return out.join("\n");
}
