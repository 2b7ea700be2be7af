// pnpm bench:rules: what an action's policy rules cost StepUp, as server CPU per call and as a
// multiple of a bare grpc-js handler in the same run. Three replicas, one per policy (the same
// payments.transfer with no rules, five rules, five of which one reads facts from PostgreSQL), on
// one core; h2load on the other repeats one StepUp with a transaction and a context that no rule
// holds for (checked), so every rule is evaluated: answered with a grant (a fresh elevation) and
// with a new challenge. Rounds alternate between the servers; the best round of each counts.
// Then the in-process figure: µs per chooseRequirement over the five compiled conditions.
// --quick: two short rounds, under a minute (CI).
import { parseArgs } from "node:util";
import { freePort } from "@stepgate/testkit/free-port";
import { type BenchCluster, type CpuSnapshot, startBenchCluster } from "./bench-cluster.ts";
import { parseBenchOptions } from "./bench-options.ts";
import { startBareServer } from "./latency/bare-http2.ts";
import { grpcHeaders, probeGrpc } from "./latency/grpc-body.ts";
import { h2loadVersion, runH2load } from "./latency/h2load.ts";
import { phasePlans } from "./latency/latency-options.ts";
import { measureFixed } from "./latency/measure-fixed.ts";
import { numberOption } from "./number-option.ts";
import { measureRuleEvaluation } from "./rules/rule-evaluation.ts";
import { type RuleScenario, ruledRequest, rulePolicies, writeRulePolicy } from "./rules/rule-policies.ts";
import {
  prepareRuleRequests,
  probeRuleRequests,
  type RulePath,
  type RuleRequest,
  rulePaths,
} from "./rules/rule-requests.ts";
import {
  formatEvaluationTable,
  formatGoal,
  formatRulesTable,
  type RuleFigures,
} from "./rules/rules-report.ts";

const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    rounds: { type: "string" },
    seconds: { type: "string" },
    "replica-cores": { type: "string", default: "0" },
    "generator-cores": { type: "string", default: "1" },
  },
});
const quick = values.quick;
const rounds = Math.round(numberOption("rounds", values.rounds, quick ? 2 : 5, 1));
const saturation = numberOption("seconds", values.seconds, quick ? 0.7 : 3, 0.1);
const replicaCores = values["replica-cores"];
// Unmeasured load on each server before the first round, as bench:latency gives its replicas: the
// gRPC path and StepUp run cold for thousands of calls.
const warmupSeconds = quick ? 1 : 4;
const plan = phasePlans({
  quick,
  warmup: quick ? 0.2 : 1,
  saturation,
  rate: 0,
  fractions: [],
  generators: values["generator-cores"],
}).fixed;
const options = parseBenchOptions([], process.env);
const log = (line: string) => process.stderr.write(`${line}\n`);
const headers = grpcHeaders(ruledRequest.caller);

if (h2loadVersion() === undefined) {
  log("h2load not found: install it with `apt-get install -y nghttp2-client` (Debian/Ubuntu)");
  process.exit(2);
}

/** A server h2load drives: its address and its processes' CPU. */
interface Server {
  address: string;
  cpu(): Promise<CpuSnapshot>;
}

const clusters: BenchCluster[] = [];
const cleanUp = () => Promise.all(clusters.map((c) => c.close()));
process.once("SIGINT", () => void cleanUp().finally(() => process.exit(130)));
try {
  const servers: {
    scenario: RuleScenario;
    cluster: BenchCluster;
    requests: Record<RulePath, RuleRequest>;
  }[] = [];
  for (const [i, [scenario, rules]] of Object.entries(rulePolicies).entries()) {
    const cluster = await startBenchCluster({
      size: 1,
      databaseAdminUrl: options.databaseUrl,
      redisUrl: options.redisUrl,
      basePort: options.basePort + i * 10,
      policyFile: writeRulePolicy(rules),
      cpuList: replicaCores,
    });
    clusters.push(cluster);
    const address = cluster.replicas[0]?.address ?? "";
    const requests = await probeRuleRequests(address, await prepareRuleRequests(cluster.target), scenario);
    servers.push({ scenario: scenario as RuleScenario, cluster, requests });
  }
  const first = servers[0] as (typeof servers)[number];
  const address = (s: (typeof servers)[number]) => s.cluster.replicas[0]?.address ?? "";
  // The floor answers the grant's bytes to the same request, on the replicas' core.
  const grantAnswer = await probeGrpc(
    address(first),
    first.requests.grant.path,
    first.requests.grant.body,
    headers,
  );
  const bare = await startBareServer(
    "grpc-js",
    await freePort(),
    first.requests.grant.path,
    grantAnswer.body,
    replicaCores,
  );
  // Every server and request measured, the floor first; each round measures each once, in turn.
  const measured: { figures: RuleFigures; server: Server; request: RuleRequest }[] = [
    {
      figures: { scenario: "bare grpc-js handler", phases: [] },
      server: bare,
      request: { ...first.requests.grant, scenario: "bare" },
    },
    ...rulePaths.flatMap((path) =>
      servers.map((s) => ({
        figures: { scenario: s.scenario, path, phases: [] },
        server: { address: address(s), cpu: () => s.cluster.cpu() },
        request: s.requests[path],
      })),
    ),
  ];
  let failures = 0;
  let answered = 0;
  try {
    log(`== warm-up: ${warmupSeconds} s each`);
    for (const m of measured)
      await runH2load({
        ...m.server,
        ...m.request,
        headers,
        ...plan.saturation,
        seconds: warmupSeconds,
        perRequestLog: false,
      });
    for (let round = 1; round <= rounds; round++) {
      log(`== round ${round} of ${rounds}`);
      for (const m of measured) {
        const result = await measureFixed(m.server, m.request, headers, plan);
        m.figures.phases.push(result.saturation);
        failures += result.saturation.failures;
        answered += result.saturation.calls;
        const notes = result.notes.length > 0 ? ` (${result.notes.join("; ")})` : "";
        log(
          `  ${m.figures.scenario}, ${m.figures.path ?? "-"}: ${result.saturation.cpuMicrosPerCall.server.toFixed(0)} µs/call${notes}`,
        );
      }
    }
  } finally {
    await bare.close();
  }
  const figures = measured.map((m) => m.figures);
  const evaluationRounds = quick ? 3 : 8;
  const evaluations = measureRuleEvaluation(evaluationRounds, quick ? 5000 : 20_000);
  console.log(
    `# StepUp for payments.transfer, ${rounds} rounds of ${saturation} s at ${plan.saturation.clients * plan.saturation.streams} in flight (h2load), best round; replicas on core ${replicaCores}`,
  );
  console.log("# no rule holds for the measured requests: every rule is evaluated");
  console.log(formatRulesTable(figures));
  console.log(formatGoal(figures, "5 rules"));
  console.log(formatGoal(figures, "5 rules, 1 reads facts"));
  console.log(`\n${formatEvaluationTable(evaluations, evaluationRounds)}`);
  // A replica saturated at 64 calls in flight may shed a few (OVERLOADED): more than 1% is a fault.
  if (failures > 0) log(`${failures} calls failed of ${failures + answered}`);
  if (failures > (failures + answered) / 100) process.exitCode = 1;
} finally {
  await cleanUp();
}
