import type { BenchResult, ClusterResult } from "./bench-result.ts";
import type { LatencySummary } from "./latency-summary.ts";
import type { PhaseResult } from "./measure-scenario.ts";
import type { OverloadResult } from "./overload.ts";
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
    ...(c.scenarios.length > 0
      ? [
          table([header, ...rows], (i) => i > 0),
          `CPU of other processes on the machine during the measured phases: ${num(meanOther, 2)} cores on average, ` +
            `${num(Math.max(...others), 2)} at most`,
          `load generators' own event loop delay in the open-loop phases: p99 up to ${ms(Math.max(...openLoops.map((p) => p.generatorLoopDelayMs.p99)))} ms, ` +
            `max ${ms(Math.max(...openLoops.map((p) => p.generatorLoopDelayMs.max)))} ms (stalls of the generators, not of Stepgate)`,
        ]
      : []),
    `peak memory of a replica: ${mib(peak)} (VmHWM over the whole run; per replica: ${memory})`,
    ...(c.overload ? [overloadTable(c.overload, c.replicas)] : []),
  ].join("\n");
}

const count = (n: number) => n.toLocaleString("en-US");
const errorList = (errors: Record<string, number>) =>
  Object.entries(errors)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${count(v)}`)
    .join(", ") || "none";

/** The overload scenario of one cluster size: a row per phase, then refusals, memory, recovery. */
function overloadTable(o: OverloadResult, replicas: number): string {
  const secs = (msValue: number) => `${num(msValue / 1000, msValue < 10_000 ? 1 : 0)} s`;
  const row = (name: string, p: PhaseResult, sent: string) => {
    const refusedOrDry = p.refusals.shed + p.refusals.limited;
    return [
      name,
      p.load.kind === "closed" ? `closed ${p.load.concurrency}` : num(p.load.offeredPerSecond, 1),
      sent,
      num(p.throughput, p.throughput < 100 ? 1 : 0),
      count(p.calls),
      count(p.refusals.shed),
      count(p.refusals.limited),
      count(p.failures - refusedOrDry),
      count(p.unstarted),
      latency(p.latency),
      p.refusalLatency.count === 0 ? "-" : `${ms(p.refusalLatency.p50)} ${ms(p.refusalLatency.p99)}`,
    ];
  };
  const plan = o.plan;
  const f = o.flood;
  const header = [
    "phase",
    "offered/s",
    "sent/s",
    "ok/s",
    "ok",
    "shed",
    "limited",
    "other failed",
    "not started",
    "ok: p50 p99 p99.9 ms",
    "refused: p50 p99 ms",
  ];
  const rows = [
    row(
      `ListFactors saturation (${secs(o.listFactors.saturation.seconds * 1000)})`,
      o.listFactors.saturation,
      "-",
    ),
    row(
      `StepUp→Verify saturation (${secs(o.criticalFlows.saturation.seconds * 1000)})`,
      o.criticalFlows.saturation,
      "-",
    ),
    row(`critical flows, no flood (${secs(plan.baselineMs)})`, o.baseline, "-"),
    row(`ListFactors flood x${plan.floodFactor} (${secs(plan.floodMs)})`, f, num(f.sentPerSecond)),
    row(`critical flows, flood (${secs(plan.floodMs)})`, o.criticalUnderFlood, "-"),
    row(`ListFactors after it (${secs(plan.recoveryMs)})`, o.recovery.phase, "-"),
  ];
  const r = o.refusals;
  const shedNote =
    r.shed === 0
      ? "none shed"
      : `${count(r.shed)} shed (UNAVAILABLE OVERLOADED): ${count(r.shedWithRetryInfo)} with RetryInfo, ` +
        `${count(r.shedWithPushback)} with grpc-retry-pushback-ms`;
  const limitedNote =
    r.limited === 0
      ? "none rate-limited"
      : `${count(r.limited)} rate-limited (RESOURCE_EXHAUSTED RATE_LIMITED): ${count(r.limitedWithRetryInfo)} with RetryInfo`;
  const memory = o.memory.replicas
    .map(
      (m) =>
        `${m.id} ${mib(m.unloadedPeakBytes)} -> ${mib(m.floodPeakBytes)} (${num(m.floodPeakBytes / m.unloadedPeakBytes, 2)}x; ` +
        `${mib(m.withRecoveryPeakBytes)} with the recovery)`,
    )
    .join(", ");
  const rec = o.recovery;
  const ratio = o.criticalUnderFlood.latency.p99 / o.baseline.latency.p99;
  return [
    `-- overload, ${replicas} replica${replicas > 1 ? "s" : ""}: ListFactors (low) from ${o.floodCaller} without retries at ${o.plan.floodFactor}x its saturation, ` +
      `StepUp→Verify flows (payments.transfer, critical) from payments at ${num(plan.criticalFraction * 100)}% of theirs; ` +
      "open loops timed from the scheduled start, a flow from its StepUp's to its Verify's answer",
    table([header, ...rows], (i) => i > 0),
    `refusals in the scenario: ${shedNote}; ${limitedNote}`,
    `critical flows: p99 ${ms(o.criticalUnderFlood.latency.p99)} ms under the flood vs ${ms(o.baseline.latency.p99)} ms without (${num(ratio, 2)}x); ` +
      `failures without the flood: ${errorList(o.baseline.errors)}; under it: ${errorList(o.criticalUnderFlood.errors)}`,
    `flood: ${count(f.sent)} calls sent at ${count(Math.round(f.sentPerSecond))}/s (${count(Math.round(o.floodPerSecond))}/s offered; ` +
      `the latest left ${ms(f.maxSendLagMs)} ms behind schedule; ${count(f.dropped)} dropped by the generators for coming more than ${plan.floodMaxLagMs} ms late), ` +
      `failures ${errorList(f.errors)}; ` +
      `cores used during it: replicas ${num(f.cores.server, 2)}, machine ${num(f.cores.machine, 2)}, other processes ${num(f.cores.other, 2)}; ` +
      `generators' event loop delay max ${ms(f.generatorLoopDelayMs.max)} ms, the critical flows' ${ms(o.criticalUnderFlood.generatorLoopDelayMs.max)} ms`,
    `replica peak memory (VmHWM${o.memory.peakReset ? ", reset before each phase" : ", NOT reset: peaks since start"}), without the flood -> under it: ${memory}`,
    `recovery: ListFactors back to >= ${count(Math.round(rec.thresholdPerSecond))}/s (${num(plan.recoveredAt * 100)}% of saturation) ` +
      (rec.recoveredAfterMs === null
        ? `NOT within ${secs(plan.recoveryMs)}`
        : `${num(rec.recoveredAfterMs / 1000, 2)} s after the flood stopped`) +
      `; per ${rec.bucketMs} ms (calls/s): ${rec.perSecond.map((n) => Math.round(n)).join(" ")}`,
    (o.replicasDown.length === 0
      ? `replicas: all ${replicas} running at the end`
      : `REPLICAS CRASHED: ${o.replicasDown.map((d) => `${d.id} (${d.exit})`).join(", ")}`) +
      `; they logged during the scenario: ${errorList(o.replicaEvents)}`,
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
  const overloadRan = r.clusters.some((c) => c.overload);
  const outside = overloadRan ? " outside the overload scenario" : "";
  out.push(
    `${r.failures === 0 ? `no call failed${outside}` : `${r.failures} calls FAILED${outside}`}; ${num(r.seconds)} s in all`,
  );
  return out.join("\n");
}
