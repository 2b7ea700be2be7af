import { parseArgs } from "node:util";
import { type ScenarioName, scenarioNames } from "@stepgate/testkit/degraded-scenarios";

/** What `pnpm chaos` runs; times are in seconds. */
export interface ChaosOptions {
  /** The scenarios to run, in order, each on a lab of its own. */
  scenarios: ScenarioName[];
  /** How long each fault is held, in s. */
  seconds: number;
  /** Load before the fault, in s. */
  before: number;
  /** Load after the fault, in s. */
  after: number;
  /** Flows started per second. */
  rate: number;
  /** A file the tables are also written to; undefined: stdout only. */
  out: string | undefined;
}

export const usage = `pnpm chaos [options]

  --scenario=a,b    scenarios to run (default all, in this order):
                    ${scenarioNames.join(", ")}
  --seconds=N       how long each fault is held (default 30)
  --before=N        seconds of load before the fault (default 5)
  --after=N         seconds of load after the fault (default 10)
  --rate=N          step-up flows started per second (default 20)
  --out=FILE        also write the tables to FILE

Each scenario runs on a lab of its own: PostgreSQL and Redis of its own, three replica processes
each reaching each store through a TCP proxy of its own, subjects seeded (TOTP) before the load.`;

/** Reads the command line; throws an Error naming the bad option. */
export function parseChaosOptions(argv: string[]): ChaosOptions | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      help: { type: "boolean", default: false },
      scenario: { type: "string", multiple: true },
      seconds: { type: "string", default: "30" },
      before: { type: "string", default: "5" },
      after: { type: "string", default: "10" },
      rate: { type: "string", default: "20" },
      out: { type: "string" },
    },
  });
  if (values.help) return "help";
  const wanted = (values.scenario ?? []).flatMap((v) => v.split(",")).filter((v) => v !== "");
  for (const name of wanted) {
    if (!(scenarioNames as readonly string[]).includes(name)) throw new Error(`unknown scenario "${name}"`);
  }
  const number = (name: string, value: string, min: number, max: number) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new Error(`--${name} must be a number from ${min} to ${max}`);
    return n;
  };
  return {
    scenarios: wanted.length > 0 ? (wanted as ScenarioName[]) : [...scenarioNames],
    seconds: number("seconds", values.seconds, 1, 600),
    before: number("before", values.before, 1, 120),
    after: number("after", values.after, 1, 120),
    rate: number("rate", values.rate, 1, 200),
    out: values.out,
  };
}
