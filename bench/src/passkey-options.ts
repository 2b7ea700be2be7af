import { join } from "node:path";
import { parseArgs } from "node:util";
import { phasePlans } from "./latency/latency-options.ts";
import type { FixedPlan } from "./latency/measure-fixed.ts";
import type { PhasePlan } from "./measure-scenario.ts";
import { numberOption } from "./number-option.ts";

/** What `pnpm bench:passkey` runs; times in the plans are in seconds (FixedPlan) and ms (PhasePlan). */
export interface PasskeyVerifyOptions {
  quick: boolean;
  /** Users seeded with an active TOTP factor (each passes Verify at most once per 30 s step). */
  totpUsers: number;
  /** Users enrolled with a passkey through the API, per algorithm (ES256, EdDSA). */
  passkeyUsers: number;
  /** Node generator processes per Verify scenario (and for the bare server's Node-driven row). */
  workers: number;
  /** h2load's plan for the bare grpc-js handler, as bench:latency drives it. */
  fixed: FixedPlan;
  /** The Node generators' plan (bench:latency's): warm-up, saturation, open loop at `fractions`. */
  plan: PhasePlan;
  /** `taskset -c` core lists: the replica's (and the bare server's), and the generators'. */
  cores: { replicas: string; generators: string };
  databaseUrl: string;
  redisUrl: string;
  basePort: number;
  outDir: string;
}

export const passkeyVerifyUsage = `pnpm bench:passkey [--quick] [options]

  --quick                  short phases and fewer users (about a minute): only shows that it runs
  --totp-users=N           users seeded with a TOTP factor (default 20000; --quick 3000)
  --passkey-users=N        users enrolled with a passkey per algorithm (default 5000; --quick 1200)
  --workers=N              Node generators per scenario, 32 calls in flight each at saturation (default 4)
  --warmup-seconds=S       unmeasured closed loop before each saturation (default 1; --quick 0.3)
  --saturation-seconds=S   closed-loop saturation phase (default 3; --quick 1)
  --rate-seconds=S         each open-loop phase at 25%, 50%, 75% (default 3; --quick 1)
  --replica-cores=LIST     taskset -c list for the replica and the bare grpc-js server (default 0)
  --generator-cores=LIST   taskset -c list for h2load and the Node generators (default 1)
  --out=DIR                where the JSON goes (default bench-results/)`;

/** Parses `pnpm bench:passkey`'s arguments; throws on a bad value. */
export function parsePasskeyVerifyOptions(argv: string[], env: NodeJS.ProcessEnv): PasskeyVerifyOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
      "totp-users": { type: "string" },
      "passkey-users": { type: "string" },
      workers: { type: "string" },
      "warmup-seconds": { type: "string" },
      "saturation-seconds": { type: "string" },
      "rate-seconds": { type: "string" },
      "replica-cores": { type: "string" },
      "generator-cores": { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.help) {
    console.log(passkeyVerifyUsage);
    process.exit(0);
  }
  const quick = values.quick;
  const number = numberOption;
  const seconds = (
    name: "warmup-seconds" | "saturation-seconds" | "rate-seconds",
    normal: number,
    short: number,
  ) => number(name, values[name], quick ? short : normal, 0.1);
  const warmup = seconds("warmup-seconds", 1, 0.3);
  const saturation = seconds("saturation-seconds", 3, 1);
  const rate = seconds("rate-seconds", 3, 1);
  const fractions = [0.25, 0.5, 0.75];
  const generators = values["generator-cores"] ?? "1";
  return {
    quick,
    totpUsers: Math.round(number("totp-users", values["totp-users"], quick ? 3000 : 20_000, 100)),
    passkeyUsers: Math.round(number("passkey-users", values["passkey-users"], quick ? 1200 : 5000, 100)),
    workers: Math.round(number("workers", values.workers, 4, 1)),
    ...phasePlans({ quick, warmup, saturation, rate, fractions, generators }),
    cores: { replicas: values["replica-cores"] ?? "0", generators },
    databaseUrl: env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
    redisUrl: env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
    basePort: 46_000 + Math.floor(Math.random() * 1000) * 4,
    outDir: values.out ?? join(import.meta.dirname, "../../bench-results"),
  };
}
