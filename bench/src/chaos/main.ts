// pnpm chaos: the degraded-mode scenarios. Each runs on a lab of its own (PostgreSQL and Redis of its
// own, three replica processes, each reaching each store through a TCP proxy of its own) under a
// steady StepUp -> Verify -> CheckGrant load through @stepgate/client, and prints one table: per
// call, success and latency; times to detect and recover; audit events expected vs found; replays,
// grants without a check, lockouts; and the scenario's goals.
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { formatGoals, scenarioGoals } from "@stepgate/testkit/degraded-goals";
import { type DegradedLab, labDetection, startDegradedLab } from "@stepgate/testkit/degraded-lab";
import { formatScenarioResult } from "@stepgate/testkit/degraded-report";
import { runScenario } from "@stepgate/testkit/degraded-run";
import { scenarios } from "@stepgate/testkit/degraded-scenarios";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { type ChaosOptions, parseChaosOptions, usage } from "./chaos-options.ts";
import { subjectsFor } from "./subjects-for.ts";

const log = (line: string) =>
  process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

let options: ChaosOptions;
try {
  const parsed = parseChaosOptions(process.argv.slice(2));
  if (parsed === "help") {
    console.log(usage);
    process.exit(0);
  }
  options = parsed;
} catch (error) {
  log(`${error instanceof Error ? error.message : String(error)}\n\n${usage}`);
  process.exit(2);
}

// The lab running now: destroyed on every path out, a signal included.
let lab: DegradedLab | undefined;
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: destroying the lab`);
    const exit = setTimeout(() => process.exit(130), 15_000);
    void (lab?.destroy() ?? Promise.resolve()).finally(() => {
      clearTimeout(exit);
      process.exit(130);
    });
  });
}

const output: string[] = [];
const print = (lines: string[]) => {
  process.stdout.write(`${lines.join("\n")}\n`);
  output.push(...lines);
  if (options.out) writeFileSync(options.out, `${output.join("\n")}\n`);
};

const ms = (s: number) => Math.round(s * 1000);
print([
  `# pnpm chaos ${new Date().toISOString()}: node ${process.version}, ${cpus().length} cores; ` +
    `${options.rate} flows/s, ${options.before} s before, faults of ${options.seconds} s, ${options.after} s after`,
  `# replicas: STEPGATE_HEALTH_INTERVAL_MS=${labDetection.healthIntervalMs} ` +
    `STEPGATE_REDIS_TIMEOUT_MS=${labDetection.redisTimeoutMs} STEPGATE_POSTGRES_TIMEOUT_MS=${labDetection.postgresTimeoutMs} ` +
    `STEPGATE_AUDIT_CLAIM_AFTER_MS=${labDetection.auditClaimAfterMs}, breaker 3 failures / 1000 ms half-open ` +
    "(defaults); client defaults (5 s deadline, 4 attempts on UNAVAILABLE, 2 replica rounds)",
  "# latencies in ms; 'fault' columns: calls started during the fault; times after the fault's start or end",
  "#",
]);

let failedGoals = 0;
let errors = 0;
for (const name of options.scenarios) {
  if (interrupted) break;
  const scenario = scenarios[name];
  log(`== ${name}`);
  try {
    lab = await startDegradedLab({ onProgress: log });
    const count = subjectsFor(options.rate, options.before + options.seconds + options.after);
    log(`seeding ${count} subjects (enrolled TOTP; their factors are cached in Redis)`);
    const subjects = await seedSubjects(lab.client, count);
    const result = await runScenario(lab, scenario, {
      subjects,
      ratePerSecond: options.rate,
      preMs: ms(options.before),
      faultMs: ms(options.seconds),
      postMs: ms(options.after),
      onProgress: log,
    });
    const goals = scenarioGoals(result);
    failedGoals += goals.filter((g) => !g.held).length;
    print([...formatScenarioResult(result), ...formatGoals(goals), "#"]);
  } catch (error) {
    errors++;
    const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
    print([`# ${name}: ERROR ${message.split("\n").slice(0, 6).join("\n#   ")}`, "#"]);
  } finally {
    await lab?.destroy();
    lab = undefined;
  }
}
print([`# ${options.scenarios.length} scenarios: ${failedGoals} goals failed, ${errors} errors`]);
if (options.out) log(`written to ${options.out}`);
process.exitCode = failedGoals + errors > 0 ? 1 : 0;
