import { join } from "node:path";
import { parseArgs } from "node:util";
import type { PhasePlan } from "../measure-scenario.ts";
import { numberOption } from "../number-option.ts";
import { type FixedScenarioName, fixedScenarioNames } from "./fixed-requests.ts";
import type { FixedPlan } from "./measure-fixed.ts";

export interface LatencyOptions {
  quick: boolean;
  /** Enrolled users per population of the cost part, each on a fresh database. */
  users: number[];
  /** Enrolled users (all known) of the latency part's own database. */
  latencyUsers: number;
  /** Users per population whose secrets the generators know (the rest are filler rows). */
  knownUsers: number;
  /** Replicas the cost part measures, each count on the same population (1..max of them started). */
  replicas: number[];
  /** Which parts run: trustworthy latency (h2load and the Verify generators), cost vs users/replicas. */
  parts: { latency: boolean; cost: boolean };
  fixedScenarios: FixedScenarioName[];
  fixed: FixedPlan;
  /** The Node generators' plan (Verify in the latency part; StepUp and Verify in the cost part). */
  plan: PhasePlan;
  /** Node generator processes for Verify in the latency part: more of them, each at a lower rate. */
  verifyWorkers: number;
  /** Node generator processes in the cost part. */
  costWorkers: number;
  /** `taskset -c` core lists: the replicas', and the generators' (h2load and Node). */
  cores: { replicas: string; generators: string };
  databaseUrl: string;
  redisUrl: string;
  basePort: number;
  outDir: string;
}

export const latencyUsage = `pnpm bench:latency [--quick] [options]

  --quick                  short phases, users 2000,20000, replicas 1,2: only shows that it runs
  --users=a,b              cost part: enrolled users per population (default 10000,100000,1000000)
  --latency-users=N        latency part: users seeded in its own database (default 20000; --quick 2000)
  --known-users=N          users per population the generators can verify as (default 30000)
  --replicas=1,2,3         replica counts for the cost part (default 1,2,3)
  --parts=latency,cost     which parts run (default both)
  --scenarios=a,b          h2load scenarios: ${fixedScenarioNames.join(", ")} (default all)
  --warmup-seconds=S       unmeasured closed loop before each saturation (default 1; --quick 0.3)
  --saturation-seconds=S   closed-loop saturation phase (default 3; --quick 1)
  --rate-seconds=S         each open-loop phase at 25%, 50%, 75% (default 3; --quick 1)
  --verify-workers=N       Node generators for the latency part's Verify (default 4)
  --cost-workers=N         Node generators for the cost part (default 2)
  --replica-cores=LIST     taskset -c list for the replicas (default 0)
  --generator-cores=LIST   taskset -c list for h2load and the Node generators (default 1)
  --out=DIR                where the JSON and SVG go (default bench-results/)`;

export function parseLatencyOptions(argv: string[], env: NodeJS.ProcessEnv): LatencyOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      users: { type: "string" },
      "latency-users": { type: "string" },
      "known-users": { type: "string" },
      replicas: { type: "string" },
      parts: { type: "string" },
      scenarios: { type: "string" },
      "warmup-seconds": { type: "string" },
      "saturation-seconds": { type: "string" },
      "rate-seconds": { type: "string" },
      "verify-workers": { type: "string" },
      "cost-workers": { type: "string" },
      "replica-cores": { type: "string" },
      "generator-cores": { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.help) {
    console.log(latencyUsage);
    process.exit(0);
  }
  const quick = values.quick;
  const number = numberOption;
  const list = (name: string, value: string | undefined, fallback: number[], min: number) =>
    value === undefined ? fallback : value.split(",").map((v) => Math.round(number(name, v, 0, min)));
  const seconds = (
    name: "warmup-seconds" | "saturation-seconds" | "rate-seconds",
    normal: number,
    short: number,
  ) => number(name, values[name], quick ? short : normal, 0.1);
  const parts = values.parts?.split(",") ?? ["latency", "cost"];
  for (const p of parts) if (p !== "latency" && p !== "cost") throw new Error(`--parts: unknown part "${p}"`);
  const fixedScenarios = (values.scenarios?.split(",") ?? [...fixedScenarioNames]).map((s) => {
    if (!(fixedScenarioNames as readonly string[]).includes(s))
      throw new Error(`--scenarios: unknown scenario "${s}"`);
    return s as FixedScenarioName;
  });
  const warmup = seconds("warmup-seconds", 1, 0.3);
  const saturation = seconds("saturation-seconds", 3, 1);
  const rate = seconds("rate-seconds", 3, 1);
  const fractions = [0.25, 0.5, 0.75];
  const generators = values["generator-cores"] ?? "1";
  return {
    quick,
    users: list("users", values.users, quick ? [2000, 20_000] : [10_000, 100_000, 1_000_000], 100),
    latencyUsers: Math.round(number("latency-users", values["latency-users"], quick ? 2000 : 20_000, 100)),
    knownUsers: Math.round(number("known-users", values["known-users"], 30_000, 100)),
    replicas: list("replicas", values.replicas, quick ? [1, 2] : [1, 2, 3], 1),
    parts: { latency: parts.includes("latency"), cost: parts.includes("cost") },
    fixedScenarios,
    ...phasePlans({ quick, warmup, saturation, rate, fractions, generators }),
    verifyWorkers: Math.round(number("verify-workers", values["verify-workers"], 4, 1)),
    costWorkers: Math.round(number("cost-workers", values["cost-workers"], 2, 1)),
    cores: { replicas: values["replica-cores"] ?? "0", generators },
    databaseUrl: env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
    redisUrl: env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
    basePort: 45_000 + Math.floor(Math.random() * 1000) * 4,
    outDir: values.out ?? join(import.meta.dirname, "../../../bench-results"),
  };
}

/**
 * The phases of a cost measurement, in the shapes `measureFixed` (`fixed`, seconds) and
 * `measureNode` (`plan`, ms) take: warm-up, saturation and open-loop phases at `fractions` of the
 * saturated rate, with generators on the cores `generators` names.
 */
export function phasePlans(p: {
  quick: boolean;
  /** Seconds. */
  warmup: number;
  /** Seconds. */
  saturation: number;
  /** Seconds per open-loop rate. */
  rate: number;
  fractions: number[];
  /** Cores for the generators, as taskset -c takes them. */
  generators: string;
}) {
  return {
    fixed: {
      warmupSeconds: p.warmup,
      saturationSeconds: p.saturation,
      rateSeconds: p.rate,
      fractions: p.fractions,
      saturation: { clients: 2, streams: 32 },
      open: { clients: 4, streams: 256 },
      cpuList: p.generators,
    },
    plan: {
      initialWarmupMs: (p.quick ? 0.5 : 3) * 1000,
      warmupMs: p.warmup * 1000,
      saturationMs: p.saturation * 1000,
      concurrency: 32,
      rateMs: p.rate * 1000,
      fractions: p.fractions,
    },
  };
}
