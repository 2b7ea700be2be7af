// pnpm chaos:kill: replicas SIGKILLed again and again under a steady StepUp -> Verify -> CheckGrant
// load from @stepgate/client with default options, each killed replica started again on its port.
// Kills land at random points of the flows' cycle, so some catch calls in flight (before their
// headers, or after their message and before their status). Prints the flow table: every failed
// call, with its reason, and the replays accepted (must be 0), plus when each restarted replica
// answered its first call. Usage: pnpm chaos:kill [--replicas=3] [--rate=40] [--kills=20] [--every=2500]
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { createStepgateClient } from "@stepgate/client";
import { formatFlowLoadReport, startFlowLoad } from "@stepgate/testkit/flow-load";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { startBenchCluster } from "./bench-cluster.ts";

const { values } = parseArgs({
  options: {
    replicas: { type: "string", default: "3" },
    rate: { type: "string", default: "40" },
    kills: { type: "string", default: "20" },
    every: { type: "string", default: "2500" },
  },
});
const [replicas, rate, kills, everyMs] = [values.replicas, values.rate, values.kills, values.every].map(
  Number,
) as [number, number, number, number];

const cluster = await startBenchCluster({
  size: replicas,
  databaseAdminUrl:
    process.env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
  redisUrl: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  basePort: 23_000 + Math.floor(Math.random() * 10_000),
});
const client = createStepgateClient({ target: cluster.target, caller: "payments" });
// Long-lived, like a calling service's: it lives through every kill and reconnects as the load does.
const probe = createStepgateClient({ target: cluster.target, caller: "payments" });
try {
  const durationMs = kills * everyMs + 3000;
  // A subject verifies once per 30 s step: enough of them for the whole run.
  const subjects = await seedSubjects(client, Math.ceil(rate * Math.min(60, durationMs / 1000 + 30)));
  const load = startFlowLoad({ client, subjects, ratePerSecond: rate, durationMs, replayProbeEvery: 10 });
  const rejoins: number[] = [];
  await sleep(1500);
  for (let k = 0; k < kills; k++) {
    // Jittered, so the kills fall at every point of the flows' cycle.
    await sleep(everyMs * (0.5 + Math.random()) - 700);
    const victim = cluster.replicas[Math.floor(Math.random() * cluster.replicas.length)];
    if (!victim) continue;
    await victim.stop("SIGKILL");
    await sleep(200);
    await victim.start();
    const servingAt = performance.now();
    const rejoined = await firstAnswer(victim.id, servingAt);
    if (rejoined !== undefined) rejoins.push(Math.round(rejoined - servingAt));
  }
  load.stop();
  const report = await load.done;
  const lines = formatFlowLoadReport(`${kills} SIGKILLs of ${replicas} replicas, ${rate} flows/s`, report);
  process.stdout.write(`${lines.join("\n")}\n`);
  rejoins.sort((a, b) => a - b);
  process.stdout.write(
    `# restarted replicas' first answer after serving: median ${rejoins[Math.floor(rejoins.length / 2)] ?? "-"} ms, max ${rejoins.at(-1) ?? "-"} ms (${rejoins.length} of ${kills})\n`,
  );
} finally {
  client.close();
  probe.close();
  await cluster.close();
}

/** When `replicaId` first answered one of the probe's calls after `since` (ms, performance.now()), within 10 s. */
async function firstAnswer(replicaId: string, since: number): Promise<number | undefined> {
  while (performance.now() - since < 10_000) {
    let answeredBy: string | null = null;
    await probe.stepUp
      .getJwks({}, { onTrailer: (t) => (answeredBy = t.get("stepgate-replica")) })
      .catch(() => {});
    if (answeredBy === replicaId) return performance.now();
    await sleep(20);
  }
  return undefined;
}
