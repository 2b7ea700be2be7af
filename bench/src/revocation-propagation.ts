// pnpm bench:revocations: how fast a revocation reaches offline verifiers, and whether one is lost.
// Three replica processes on this machine's PostgreSQL and Redis, 100 verifiers (@stepgate/client,
// each subscribed to the feed through the client's round_robin channel, so their streams spread
// over the replicas). Each round ends one session whose grant every verifier holds, and measures,
// per verifier, the time from EndSession's answer to the first offline verifyGrant that refuses the
// grant (polled every 2 ms). Each replica in turn is SIGKILLed and started again three rounds later:
// its verifiers resume elsewhere from their cursor. At the end every verifier must refuse every
// revoked grant.
// Options: --verifiers N (100), --rounds N (40), --quick (20 verifiers, 12 rounds).
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, GrantError, type StepgateClient } from "@stepgate/client";
import { grantsForSessions, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { startBenchCluster } from "./bench-cluster.ts";
import { parseBenchOptions } from "./bench-options.ts";
import { table } from "./text-table.ts";

const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const numberAfter = (flag: string, fallback: number) => {
  const at = argv.indexOf(flag);
  return at >= 0 ? Number(argv[at + 1]) : fallback;
};
const verifierCount = numberAfter("--verifiers", quick ? 20 : 100);
const rounds = numberAfter("--rounds", quick ? 12 : 40);
const action = "account.change_email";
const options = parseBenchOptions([], process.env);

const log = (line: string) => console.log(line);
const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number);

const cluster = await startBenchCluster({
  size: 3,
  databaseAdminUrl: options.databaseUrl,
  redisUrl: options.redisUrl,
  basePort: options.basePort,
});
const verifiers: StepgateClient[] = [];
try {
  const admin = createStepgateClient({ target: cluster.target, caller: "payments" });
  verifiers.push(admin);
  log(`# ${verifierCount} verifiers, ${rounds} rounds, 3 replicas (${cluster.target})`);
  for (let i = 0; i < verifierCount; i++) {
    verifiers.push(createStepgateClient({ target: cluster.target, caller: "payments" }));
  }
  const subjects = await seedSubjects(admin, rounds);
  // One grant per round, for a session of its own: verified once by everyone before its end.
  const grants = await grantsForSessions(admin, subjects, action, "bench-revocation-");
  const watchers = verifiers.slice(1);
  const refuses = async (v: StepgateClient, g: (typeof grants)[number]) => {
    try {
      await v.verifyGrant(g.token, { action, subject: g.subject, sessionId: g.sessionId });
      return false;
    } catch (error) {
      if (error instanceof GrantError && error.reason === "GRANT_REVOKED") return true;
      throw error;
    }
  };
  for (const g of grants)
    for (const v of watchers) if (await refuses(v, g)) throw new Error("refused before its end");
  const latencies: number[] = [];
  const killedLatencies: number[] = [];
  let timedOut = 0;
  // Each replica in turn is SIGKILLed and, three rounds later, started again: whichever replica
  // holds the streams, they all have to resume elsewhere at least once.
  const killRounds = new Map(cluster.replicas.map((_, i) => [Math.floor(((i + 1) * rounds) / 4), i]));
  let down: number | undefined;
  let downSince = 0;
  for (const [round, g] of grants.entries()) {
    if (down !== undefined && round === downSince + 3) {
      await cluster.replicas[down]?.start();
      log(`# round ${round}: replica-${down + 1} serving again`);
      down = undefined;
    }
    const kill = killRounds.get(round);
    if (kill !== undefined && down === undefined) {
      log(`# round ${round}: SIGKILL replica-${kill + 1}`);
      await cluster.replicas[kill]?.stop("SIGKILL");
      down = kill;
      downSince = round;
    }
    const killRound = down !== undefined;
    await admin.stepUp.endSession({ subject: g.subject, sessionId: g.sessionId });
    const ended = performance.now();
    const pending = new Set(watchers);
    while (pending.size > 0 && performance.now() - ended < 10_000) {
      for (const v of [...pending]) {
        if (await refuses(v, g)) {
          pending.delete(v);
          (killRound ? killedLatencies : latencies).push(performance.now() - ended);
        }
      }
      if (pending.size > 0) await sleep(2);
    }
    timedOut += pending.size;
    await sleep(50);
  }
  if (down !== undefined) await cluster.replicas[down]?.start();
  // Lost: a revoked grant some verifier still accepts, after every round and the kill.
  let lost = 0;
  for (const g of grants) for (const v of watchers) if (!(await refuses(v, g))) lost++;
  const received = watchers.map((v) => v.revocationFeed()?.received ?? 0);
  const streams = watchers.reduce((n, v) => n + (v.revocationFeed()?.streams ?? 0), 0);
  const row = (name: string, values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return [
      name,
      String(values.length),
      ...[50, 90, 99].map((p) => percentile(sorted, p).toFixed(1)),
      (sorted.at(-1) ?? Number.NaN).toFixed(1),
    ];
  };
  log("");
  log("EndSession answered -> offline verifyGrant refuses (ms), per verifier and revocation");
  log(
    table([
      ["rounds", "samples", "p50", "p90", "p99", "max"],
      row("steady", latencies),
      row("while a replica is down", killedLatencies),
      row("all", [...latencies, ...killedLatencies]),
    ]),
  );
  log("");
  log(
    `revocations lost (a revoked grant still accepted at the end): ${lost} of ${grants.length * watchers.length}; ` +
      `not refused within 10 s during the run: ${timedOut}; streams opened: ${streams} for ${watchers.length} verifiers; ` +
      `events received per verifier: min ${Math.min(...received)}, max ${Math.max(...received)} (${grants.length} revocations)`,
  );
} finally {
  for (const v of verifiers) v.close();
  await cluster.close();
}
