import { parseArgs } from "node:util";

/** The floods `pnpm bench:overload` sends (bench/README.md, "Floods from h2load"). */
export const floodNames = ["one-caller", "many-callers", "same-service"] as const;
export type FloodName = (typeof floodNames)[number];

export interface FloodOptions {
  quick: boolean;
  /** Cluster sizes, each on a fresh database and Redis prefix. */
  replicas: number[];
  floods: FloodName[];
  /** Streams in flight over the whole flood (h2load `-c` x `-m`, summed over its processes). */
  streams: number;
  /** Flood sizes (streams) of the sweep (one-caller), for the chart; empty: no sweep. */
  sweep: number[];
  /** Critical StepUp -> Verify flows per second (open loop), with and without the flood. */
  criticalPerSecond: number;
  /** Critical flows alone, then beside each flood, in seconds. */
  baselineSeconds: number;
  floodSeconds: number;
  /** Users seeded per cluster: a user passes Verify once per 30 s TOTP step. */
  users: number;
  /** `taskset -c` lists: the replicas', and the flood's and the critical client's. */
  cores: { replicas: string; generators: string };
  databaseUrl: string;
  redisUrl: string;
  basePort: number;
  outDir: string;
}

export const floodUsage = `pnpm bench:overload [--quick] [options]

  --quick                  CI: 1 replica, 128 streams, 2 s baseline and 3 s floods
  --replicas=1,3           cluster sizes (default 1,3; --quick 1)
  --floods=a,b             ${floodNames.join(", ")} (default all)
  --streams=N              streams in flight over the whole flood (default 1024)
  --sweep[=a,b]            also one-caller at these flood sizes, for the chart (default 16,64,256,1024)
  --critical-rate=N        critical StepUp->Verify flows per second (default 10)
  --baseline-seconds=S     critical flows alone before each flood (default 10)
  --flood-seconds=S        each flood (default 15)
  --users=N                users seeded per cluster (default 3000)
  --replica-cores=LIST     taskset -c list for the replicas (default 0)
  --generator-cores=LIST   taskset -c list for h2load and the critical client (default 1)
  --out=DIR                where the JSON and SVG go (default bench-results/)`;

const list = (s: string) => s.split(",").filter((x) => x !== "");
const positive = (name: string, s: string) => {
  const n = Number(s);
  if (!(n > 0)) throw new Error(`--${name}: a positive number, not ${s}`);
  return n;
};

/** Options from the command line; throws with a message for a bad one. */
export function parseFloodOptions(argv: string[], env: NodeJS.ProcessEnv): FloodOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      replicas: { type: "string" },
      floods: { type: "string" },
      streams: { type: "string" },
      sweep: { type: "string" },
      "critical-rate": { type: "string" },
      "baseline-seconds": { type: "string" },
      "flood-seconds": { type: "string" },
      users: { type: "string" },
      "replica-cores": { type: "string" },
      "generator-cores": { type: "string" },
      out: { type: "string" },
    },
  });
  // `--sweep` alone: parseArgs wants a value, so the bare flag is spelled out before parsing.
  const quick = values.quick === true;
  const floods = values.floods ? list(values.floods) : [...floodNames];
  for (const f of floods)
    if (!(floodNames as readonly string[]).includes(f)) throw new Error(`--floods: unknown flood ${f}`);
  const number = (name: keyof typeof values, fallback: number) => {
    const v = values[name];
    return typeof v === "string" ? positive(name, v) : fallback;
  };
  return {
    quick,
    replicas: values.replicas
      ? list(values.replicas).map((r) => positive("replicas", r))
      : quick
        ? [1]
        : [1, 3],
    floods: floods as FloodName[],
    streams: number("streams", quick ? 128 : 1024),
    sweep: values.sweep === undefined ? [] : list(values.sweep).map((s) => positive("sweep", s)),
    criticalPerSecond: number("critical-rate", 10),
    baselineSeconds: number("baseline-seconds", quick ? 2 : 10),
    floodSeconds: number("flood-seconds", quick ? 3 : 15),
    users: number("users", quick ? 600 : 3000),
    cores: { replicas: values["replica-cores"] ?? "0", generators: values["generator-cores"] ?? "1" },
    databaseUrl: env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
    redisUrl: env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
    basePort: 47200,
    outDir: values.out ?? "bench-results",
  };
}

/** argv with a bare `--sweep` given its default sizes. */
export function withSweepDefault(argv: string[]): string[] {
  return argv.map((a) => (a === "--sweep" ? "--sweep=16,64,256,1024" : a));
}
