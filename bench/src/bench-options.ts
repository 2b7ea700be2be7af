import { join } from "node:path";
import { parseArgs } from "node:util";
import type { PhasePlan } from "./measure-scenario.ts";
import { numberOption } from "./number-option.ts";
import type { OverloadPlan } from "./overload.ts";
import { type BenchScenarioName, benchScenarioNames, type ScenarioName } from "./worker-messages.ts";

export interface BenchOptions {
  quick: boolean;
  /** Cluster sizes to measure, each on a fresh database and Redis prefix. */
  replicas: number[];
  /** Users seeded with an active TOTP factor, per cluster. */
  users: number;
  /** Elevated sessions per worker, for stepup-elevated and checkgrant. */
  sessions: number;
  workers: number;
  /** The gRPC scenarios, in order. */
  scenarios: ScenarioName[];
  plan: PhasePlan;
  /** The overload scenario, after the others; undefined when not selected. */
  overload: OverloadPlan | undefined;
  offline: { rounds: number; grants: number; cachedCalls: number };
  databaseUrl: string;
  redisUrl: string;
  basePort: number;
  outDir: string;
}

export const usage = `pnpm bench [--quick] [options]

  --quick                  CI check: one replica, few users, 0.5 s phases; fails if any call fails
  --replicas=1,3           cluster sizes to measure (default 1,3; --quick: 1)
  --users=N                users seeded with a TOTP factor per cluster (default 20000; --quick: 2000)
  --workers=N              load generator processes (default 2)
  --concurrency=N          calls in flight per worker at saturation (default 64)
  --warmup-seconds=S       unmeasured closed loop before each saturation (default 1)
  --saturation-seconds=S   closed-loop saturation phase (default 4)
  --rate-seconds=S         each open-loop phase at 25%, 50%, 75% of saturation (default 3)
  --scenarios=a,b          subset of ${benchScenarioNames.join(", ")}
  --overload-seconds=S     overload: the flood's length (default 60; --quick: 3)
  --overload-baseline-seconds=S  overload: critical flows alone before it (default 10; --quick: 1)
  --overload-recovery-seconds=S  overload: ListFactors closed loop after it (default 10; --quick: 3)
  --out=DIR                where the JSON goes (default bench-results/)
  STEPGATE_BENCH_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/postgres)
  STEPGATE_BENCH_REDIS_URL    (default redis://127.0.0.1:6379)`;

export function parseBenchOptions(argv: string[], env: NodeJS.ProcessEnv): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      replicas: { type: "string" },
      users: { type: "string" },
      workers: { type: "string" },
      concurrency: { type: "string" },
      "warmup-seconds": { type: "string" },
      "saturation-seconds": { type: "string" },
      "rate-seconds": { type: "string" },
      scenarios: { type: "string" },
      "overload-seconds": { type: "string" },
      "overload-baseline-seconds": { type: "string" },
      "overload-recovery-seconds": { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  const quick = values.quick;
  const number = numberOption;
  const ms = (name: string, value: string | undefined, seconds: number) =>
    number(name, value, seconds, 0.1) * 1000;
  const selected = (values.scenarios?.split(",") ?? [...benchScenarioNames]).map((s) => {
    if (!(benchScenarioNames as readonly string[]).includes(s))
      throw new Error(`--scenarios: unknown scenario "${s}"`);
    return s as BenchScenarioName;
  });
  // Overload comes after the others wherever it is named.
  const scenarios = selected.filter((s): s is ScenarioName => s !== "overload");
  const replicas = (values.replicas?.split(",") ?? (quick ? ["1"] : ["1", "3"])).map((r) =>
    Math.round(number("replicas", r, 1, 1)),
  );
  return {
    quick,
    replicas,
    users: Math.round(number("users", values.users, quick ? 2000 : 20_000, 100)),
    sessions: quick ? 20 : 200,
    workers: Math.round(number("workers", values.workers, 2, 1)),
    scenarios,
    plan: {
      initialWarmupMs: quick ? 300 : 4000,
      warmupMs: ms("warmup-seconds", values["warmup-seconds"], quick ? 0.2 : 1),
      saturationMs: ms("saturation-seconds", values["saturation-seconds"], quick ? 0.5 : 4),
      concurrency: Math.round(number("concurrency", values.concurrency, 64, 1)),
      rateMs: ms("rate-seconds", values["rate-seconds"], quick ? 0.5 : 3),
      fractions: [0.25, 0.5, 0.75],
    },
    overload: selected.includes("overload")
      ? {
          floodMs: ms("overload-seconds", values["overload-seconds"], quick ? 3 : 60),
          baselineMs: ms("overload-baseline-seconds", values["overload-baseline-seconds"], quick ? 1 : 10),
          recoveryMs: ms("overload-recovery-seconds", values["overload-recovery-seconds"], quick ? 3 : 10),
          bucketMs: 250,
          floodFactor: 3,
          floodMaxLagMs: 250,
          criticalFraction: 0.1,
          recoveredAt: 0.9,
          // CI does not wait up to 30 s; its flows' saturation may run dry and come out low.
          waitForTotpStep: !quick,
        }
      : undefined,
    offline: quick
      ? { rounds: 1, grants: 300, cachedCalls: 3000 }
      : { rounds: 7, grants: 5000, cachedCalls: 200_000 },
    databaseUrl: env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
    redisUrl: env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
    // A random base in a range tests and pnpm dev do not use, so a run beside them does not collide.
    basePort: 43_000 + Math.floor(Math.random() * 2000) * 4,
    outDir: values.out ?? join(import.meta.dirname, "../../bench-results"),
  };
}
