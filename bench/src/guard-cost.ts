// pnpm bench:guard: what @stepgate/guard costs a protected call, as a multiple of a bare grpc-js
// handler in the same run. One replica on this machine's PostgreSQL and Redis issues 32 grants
// (payments.transfer, 32 sessions); the payments example's TransferService runs bare and guarded
// on grpc-js and on connect-node in one child process (guard-servers.ts). Each server gets rounds
// of closed-loop calls (32 in flight, every call with one of the grants: admitted offline, the
// revocation feed subscribed); the best round of each counts, since a shared machine only adds.
// Prints calls/s, client p50/p99 and the servers' CPU per call. --quick: shorter rounds.
import { fork } from "node:child_process";
import * as grpc from "@grpc/grpc-js";
import { grantHeader } from "@stepgate/api";
import { createStepgateClient } from "@stepgate/client";
import { TransferService } from "@stepgate/example-payments/gen/payments/v1/transfer_service_pb";
import { sessionHeader, userHeader } from "@stepgate/example-payments/transfer-service";
import { createGrpcServiceDefinition } from "@stepgate/grpc-bridge";
import { grantsForSessions, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { startBenchCluster } from "./bench-cluster.ts";
import { parseBenchOptions } from "./bench-options.ts";
import { table } from "./text-table.ts";

const quick = process.argv.includes("--quick");
const roundMs = quick ? 1000 : 4000;
const rounds = quick ? 2 : 4;
const inFlight = 32;
const options = parseBenchOptions([], process.env);
const transfer = { amount: "120.00", currency: "EUR", payee: "ACME Ltd", fromAccount: "DE-001" };
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;

interface Round {
  calls: number;
  failed: number;
  wallMs: number;
  cpuMs: number;
  latencies: number[];
}

const cluster = await startBenchCluster({
  size: 1,
  databaseAdminUrl: options.databaseUrl,
  redisUrl: options.redisUrl,
  basePort: options.basePort,
});
const servers = fork(new URL("./guard-servers.ts", import.meta.url), {
  env: { PATH: process.env.PATH ?? "", STEPGATE_TARGET: cluster.target },
});
const nextMessage = () =>
  new Promise<Record<string, unknown>>((resolve) => servers.once("message", (m) => resolve(m as never)));
try {
  const admin = createStepgateClient({ target: cluster.target, caller: "payments" });
  const grants = await grantsForSessions(
    admin,
    await seedSubjects(admin, inFlight),
    "payments.transfer",
    "bench-guard-",
  );
  admin.close();
  const { ports } = (await nextMessage()) as { ports: Record<string, number> };
  const cpuMs = async () => {
    servers.send("cpu");
    const { cpu } = (await nextMessage()) as { cpu: NodeJS.CpuUsage };
    return (cpu.user + cpu.system) / 1000;
  };
  const definition = createGrpcServiceDefinition(TransferService);
  const serialize = definition.Transfer?.requestSerialize as (m: object) => Buffer;
  const Client = grpc.makeGenericClientConstructor(definition, "TransferService");
  const metadataFor = grants.map((g) => {
    const m = new grpc.Metadata();
    m.set(userHeader, g.subject);
    m.set(sessionHeader, g.sessionId);
    m.set(grantHeader, g.token);
    return m;
  });

  const round = async (client: grpc.Client): Promise<Round> => {
    const r: Round = { calls: 0, failed: 0, wallMs: 0, cpuMs: 0, latencies: [] };
    const cpuBefore = await cpuMs();
    const started = performance.now();
    const loop = async (i: number) => {
      while (performance.now() - started < roundMs) {
        const t0 = performance.now();
        const ok = await new Promise<boolean>((resolve) =>
          client.makeUnaryRequest(
            "/payments.v1.TransferService/Transfer",
            serialize,
            (b: Buffer) => b,
            transfer,
            metadataFor[i % metadataFor.length] as grpc.Metadata,
            (error) => resolve(!error),
          ),
        );
        r.latencies.push(performance.now() - t0);
        r.calls++;
        if (!ok) r.failed++;
      }
    };
    await Promise.all(Array.from({ length: inFlight }, (_, i) => loop(i)));
    r.wallMs = performance.now() - started;
    r.cpuMs = (await cpuMs()) - cpuBefore;
    r.latencies.sort((a, b) => a - b);
    return r;
  };

  const best = new Map<string, Round>();
  const clients = Object.entries(ports).map(
    ([name, port]) => [name, new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure())] as const,
  );
  for (const [, c] of clients) await round(c); // warm-up: JIT, connections, the verified-grant cache
  for (let i = 0; i < rounds; i++) {
    for (const [name, c] of clients) {
      const r = await round(c);
      const prior = best.get(name);
      if (!prior || r.cpuMs / r.calls < prior.cpuMs / prior.calls) best.set(name, r);
    }
  }
  const bare = best.get("grpc-js bare") as Round;
  const perCall = (r: Round) => (r.cpuMs * 1000) / r.calls;
  const rows = [...best].map(([name, r]) => [
    name,
    String(Math.round((r.calls / r.wallMs) * 1000)),
    percentile(r.latencies, 0.5).toFixed(2),
    percentile(r.latencies, 0.99).toFixed(2),
    perCall(r).toFixed(1),
    `${(perCall(r) / perCall(bare)).toFixed(2)}x`,
    String(r.failed),
  ]);
  console.log(
    `# ${inFlight} in flight, best of ${rounds} rounds of ${roundMs} ms; ${grants.length} grants checked offline`,
  );
  console.log(
    table([
      ["server", "calls/s", "p50 ms", "p99 ms", "server CPU µs/call", "vs bare grpc-js", "failed"],
      ...rows,
    ]),
  );
  for (const [, c] of clients) c.close();
  const failed = [...best.values()].reduce((n, r) => n + r.failed, 0);
  if (failed > 0) process.exitCode = 1;
} finally {
  servers.kill("SIGTERM");
  await cluster.close();
}
