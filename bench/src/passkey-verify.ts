// pnpm bench:passkey: what a passkey Verify (ES256 and EdDSA) costs beside a TOTP Verify, in µs of
// server CPU per call, as a multiple of a bare grpc-js handler's measured in the same run (never of
// Stepgate's own no-op), and its latency. The pieces are bench:latency's: the bare grpc-js server
// driven by h2load (measure-fixed.ts), the Verify scenarios by Node generators (measure-node.ts),
// one replica pinned to one core and the generators to the other. Prints a table, writes JSON.
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "@stepgate/testkit/free-port";
import type { PasskeyAlgorithm } from "@stepgate/testkit/software-authenticator";
import pg from "pg";
import { type BenchCluster, cpuUsed, startBenchCluster } from "./bench-cluster.ts";
import { codeRevision } from "./code-revision.ts";
import { type BareHttp2, startBareServer } from "./latency/bare-http2.ts";
import type { FixedRequest } from "./latency/fixed-requests.ts";
import { encodeStrings, grpcFrame, grpcHeaders, probeGrpc } from "./latency/grpc-body.ts";
import { h2loadVersion, runH2load } from "./latency/h2load.ts";
import type { LatencyScenario } from "./latency/latency-phase.ts";
import { measureFixed } from "./latency/measure-fixed.ts";
import { measureNode } from "./latency/measure-node.ts";
import { caller, startWarmWorkers } from "./latency/warm-workers.ts";
import { type LoadWorkers, startLoadWorkers } from "./load-workers.ts";
import { describeMachine } from "./machine.ts";
import type { PasskeyParty, PasskeyWorkerCommand } from "./passkey-calls.ts";
import { parsePasskeyVerifyOptions, passkeyVerifyUsage } from "./passkey-options.ts";
import { formatPasskeyTable, generatorDelays, type PasskeyRow } from "./passkey-report.ts";
import { writeResultsJson } from "./results-file.ts";
import { seedUsers } from "./seed-users.ts";

const log = (line: string) => process.stderr.write(`${line}\n`);
const started = performance.now();
const startedAt = new Date();
const code = codeRevision();

let options: ReturnType<typeof parsePasskeyVerifyOptions>;
try {
  options = parsePasskeyVerifyOptions(process.argv.slice(2), process.env);
} catch (error) {
  log(`${error instanceof Error ? error.message : String(error)}\n\n${passkeyVerifyUsage}`);
  process.exit(2);
}

/** The relying party the passkeys are registered with: the policy's default (no `callers` section). */
const party: PasskeyParty = { rpId: "localhost", origin: "http://localhost:8088" };
const algorithms: PasskeyAlgorithm[] = ["ES256", "EdDSA"];

/**
 * The example policy's shape with passkeys (as test/support/passkeys.ts's `passkeyPolicy`) and
 * rate limits out of reach (as bench-cluster.ts's bench policy): `payments.transfer` takes a
 * passkey (user verification required) or TOTP, so both Verify scenarios answer the same action.
 * A software passkey is device-bound and user-verified, so it earns `device_bound_acr`.
 */
const policy = `levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  recovery_code: { acr: aal2, amr: [otp] }
  passkey: { acr: aal2, device_bound_acr: aal3 }
webauthn: { rp_id: ${party.rpId}, rp_name: Stepgate bench, origins: ["${party.origin}"] }
challenge: { ttl: 300, max_attempts: 5 }
lockout: { max_failures: 10, duration: 900 }
grant_ttl: 300
actions:
  payments.transfer: { acr: aal2, max_age: 300, methods: [passkey, totp], priority: critical, passkey: { user_verification: required } }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.enroll_passkey: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
rate_limits:
  subject: { calls: 10000000, per: 60 }
  source: { calls: 10000000, per: 1 }
  caller: { calls: 10000000, per: 1 }
`;

const h2load = h2loadVersion();
if (h2load === undefined)
  log(
    "h2load not found: the bare grpc-js handler is driven by the Node generators only, and the multiples are " +
      "over that. Install it with `apt-get install -y nghttp2-client` (Debian/Ubuntu) to measure as bench:latency does.",
  );

const policyDir = mkdtempSync(join(tmpdir(), "stepgate-bench-passkey-"));
const policyFile = join(policyDir, "policy.yaml");
writeFileSync(policyFile, policy);

let cluster: BenchCluster | undefined;
let bare: BareHttp2 | undefined;
const workerSets: { close(): Promise<void> }[] = [];
const cleanup = async () => {
  await Promise.all(workerSets.map((w) => w.close().catch((e: unknown) => log(`cleanup: ${String(e)}`))));
  await bare?.close().catch((e: unknown) => log(`cleanup: ${String(e)}`));
  await cluster?.close().catch((e: unknown) => log(`cleanup: ${String(e)}`));
  rmSync(policyDir, { recursive: true, force: true });
};
let interrupted = false;
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    interrupted = true;
    log(`${signal}: stopping the replica and the bare server, removing the bench database`);
    void cleanup().finally(() => process.exit(130));
  });
}

/** Enrols `count` passkeys of `algorithm` through the API, split over `workers`; seconds taken. */
async function enrolPasskeys(
  workers: LoadWorkers<PasskeyWorkerCommand>,
  algorithm: PasskeyAlgorithm,
  count: number,
  run: string,
): Promise<number> {
  const t0 = performance.now();
  const subjects = Array.from({ length: count }, (_, i) => `bench-passkey-${run}-${algorithm}-${i}`);
  const replies = await workers.all<{ held: number; resentAfterSuccess: number }>((w) => ({
    type: "enrol-passkeys",
    algorithm,
    subjects: subjects.filter((_, i) => i % workers.size === w),
  }));
  const seconds = (performance.now() - t0) / 1000;
  const held = replies.reduce((n, r) => n + r.held, 0);
  const resent = replies.reduce((n, r) => n + r.resentAfterSuccess, 0);
  log(
    `  enrolled ${held} ${algorithm} passkeys in ${seconds.toFixed(1)} s` +
      (resent > 0 ? ` (so far ${resent} Finish resent by the client after it went through)` : ""),
  );
  return seconds;
}

/**
 * Waits until the replica and the stores are idle: at most 0.05 cores over two 500 ms windows in a
 * row, or `maxSeconds`. Enrolment and preparation leave work behind them (the audit outbox
 * drains, PostgreSQL writes back), and it would land on the replica's core during the next
 * measurement. Resolves with the seconds waited.
 */
async function settle(cluster: BenchCluster, maxSeconds: number): Promise<number> {
  const t0 = performance.now();
  let quiet = 0;
  let before = await cluster.cpu();
  while (quiet < 2 && performance.now() - t0 < maxSeconds * 1000) {
    await sleep(500);
    const after = await cluster.cpu();
    const used = cpuUsed(before, after);
    quiet = (used.replicas + used.stores) / 0.5 < 0.05 ? quiet + 1 : 0;
    before = after;
  }
  return (performance.now() - t0) / 1000;
}

const rows: PasskeyRow[] = [];
/** The bare grpc-js handler's saturation-only runs after each Verify scenario (in the JSON, not the table). */
const floorRuns: PasskeyRow[] = [];
const notes: string[] = [];
let floorMicros = Number.NaN;
let versions = { postgres: "unknown", redis: "unknown" };
const seeding: Record<string, number> = {};
let broken: string | undefined;
try {
  const { plan } = options;
  cluster = await startBenchCluster({
    size: 1,
    databaseAdminUrl: options.databaseUrl,
    redisUrl: options.redisUrl,
    basePort: options.basePort,
    cpuList: options.cores.replicas,
    policyFile,
  });
  const c = cluster;
  versions = { postgres: await c.database.version(), redis: (await c.redis.info()).version };
  log(`== 1 replica on core ${options.cores.replicas}, generators on ${options.cores.generators}`);
  let t0 = performance.now();
  const totpUsers = await seedUsers(c.database.url, c.encryptionKeys, options.totpUsers);
  seeding.totpSeconds = (performance.now() - t0) / 1000;
  log(`  seeded ${totpUsers.length} TOTP users in ${seeding.totpSeconds.toFixed(1)} s`);

  // Passkeys through the API (Begin/FinishPasskeyEnrollment), by the workers that will assert with them.
  const passkeyWorkers = startLoadWorkers<PasskeyWorkerCommand>(
    options.workers,
    options.cores.generators,
    join(import.meta.dirname, "passkey-worker.ts"),
  );
  workerSets.push(passkeyWorkers);
  await passkeyWorkers.all(() => ({ type: "passkey-init", target: c.target, caller, party }));
  const run = randomBytes(4).toString("hex");
  for (const algorithm of algorithms)
    seeding[`${algorithm}Seconds`] = await enrolPasskeys(
      passkeyWorkers,
      algorithm,
      options.passkeyUsers,
      run,
    );
  // As bench:latency after its seeding: autovacuum should not start on these rows mid-measurement.
  t0 = performance.now();
  const db = new pg.Client({ connectionString: c.database.url });
  await db.connect();
  await db.query("vacuum analyze").finally(() => db.end());
  log(`  vacuum analyze ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  // The TOTP generators run bench:latency's warm-up: Noop in a closed loop through the replica,
  // whose gRPC path runs cold for thousands of calls (not measured, not a baseline).
  const totpWorkers = await startWarmWorkers(options.workers, options.cores.generators, c.target, totpUsers, {
    concurrency: plan.concurrency,
    durationMs: plan.initialWarmupMs,
  });
  workerSets.push(totpWorkers);

  // The floor: bench:latency's bare grpc-js server, on the replica's core, answering the no-op's
  // method with the bytes the replica answers it with.
  const noop: FixedRequest = {
    scenario: "noop",
    path: "/stepgate.bench.v1.BenchService/Noop",
    body: grpcFrame(encodeStrings({ 1: "x".repeat(32) })),
  };
  const headers = grpcHeaders(caller);
  const answer = await probeGrpc(c.replicas[0]?.address ?? "", noop.path, noop.body, headers);
  bare = await startBareServer("grpc-js", await freePort(), noop.path, answer.body, options.cores.replicas);
  const bareServer = bare;
  // A fresh server runs cold for a few seconds (JIT): after a 0.3 s warm-up its first saturation
  // cost 1.5x what the next ones did. Unmeasured, like the replica's initial Noop warm-up.
  if (h2load !== undefined)
    await runH2load({
      address: bareServer.address,
      path: noop.path,
      body: noop.body,
      headers,
      ...options.fixed.saturation,
      seconds: Math.max(3, plan.initialWarmupMs / 1000),
      ...(options.fixed.cpuList === undefined ? {} : { cpuList: options.fixed.cpuList }),
      perRequestLog: false,
    });
  const settled: number[] = [];
  const quiet = async () => {
    settled.push(await settle(c, options.quick ? 5 : 15));
  };
  const bareH2load = async (fractions: number[]) => {
    await quiet();
    const s = await measureFixed(bareServer, noop, headers, { ...options.fixed, fractions });
    log(
      `  bare grpc-js (h2load): saturation ${Math.round(s.saturation.throughput)}/s, ` +
        `${s.saturation.cpuMicrosPerCall.server.toFixed(1)} µs server CPU/call`,
    );
    return { ...s, scenario: "bare-grpc-js" };
  };
  // The floor's saturation is measured again after each Verify scenario (`floors`): on a shared
  // machine CPU per call drifts with what else runs, and the spread of these says by how much.
  const floors: { after: string; micros: number }[] = [];
  const floorAgain = async (after: string) => {
    if (h2load === undefined) return;
    const again = await bareH2load([]);
    floors.push({ after, micros: again.saturation.cpuMicrosPerCall.server });
    floorRuns.push({
      label: `bare grpc-js (after ${after})`,
      measured: { ...again, scenario: "bare-grpc-js" },
    });
  };
  if (h2load !== undefined) {
    const first = await bareH2load(options.fixed.fractions);
    rows.push({ label: "bare grpc-js", measured: first });
    floors.push({ after: "start", micros: first.saturation.cpuMicrosPerCall.server });
  }

  // The same handler from the Verify rows' own driver, for the latency beside theirs.
  const bareView: BenchCluster = {
    ...c,
    replicas: [],
    target: `ipv4:${bareServer.address}`,
    cpu: () => bareServer.cpu(),
  };
  const bareWorkers = await startWarmWorkers(options.workers, options.cores.generators, bareView.target, [], {
    concurrency: plan.concurrency,
    durationMs: plan.initialWarmupMs,
  });
  let bareNode: LatencyScenario;
  try {
    await quiet();
    bareNode = await measureNode(bareView, bareWorkers, "noop", plan, 0, log);
  } finally {
    await bareWorkers.close();
  }
  rows.push({ label: "bare grpc-js (node)", measured: { ...bareNode, scenario: "bare-grpc-js-node" } });

  // Each worker prepares a challenge for (almost) every passkey user it has before saturation, and
  // the TOTP workers as many: measure-node.ts asks for rate x 1.5 x (warm-up + saturation) over the
  // workers, so `hint` is the rate past which a saturation phase would run dry.
  const perWorker = Math.floor((0.99 * options.passkeyUsers) / options.workers);
  const hint = (perWorker * options.workers) / ((1.5 * (plan.warmupMs + plan.saturationMs)) / 1000);
  const measureVerify = async (workers: LoadWorkers, label: string, scenario: string) => {
    // Prepared here rather than in measure-node.ts (whose own request then finds them waiting), so
    // that what the preparation leaves behind has drained before the warm-up.
    await workers.all<number>(() => ({ type: "prepare-challenges", count: perWorker }));
    await quiet();
    const s = await measureNode(c, workers, "verify", plan, hint, log);
    rows.push({ label, measured: { ...s, scenario } });
  };
  await measureVerify(totpWorkers, "TOTP Verify", "totp-verify");
  await floorAgain("TOTP");
  for (const algorithm of algorithms) {
    if (interrupted) throw new Error("interrupted");
    await passkeyWorkers.all(() => ({ type: "select", algorithm }));
    await measureVerify(
      passkeyWorkers,
      `passkey ${algorithm} Verify`,
      `passkey-${algorithm.toLowerCase()}-verify`,
    );
    await floorAgain(algorithm);
  }

  const nodeFloor = bareNode.saturation.cpuMicrosPerCall.server;
  if (h2load !== undefined) {
    floorMicros = floors.reduce((a, f) => a + f.micros, 0) / floors.length;
    notes.push(
      `x bare grpc-js: server CPU per call over a bare grpc-js unary handler's (h2load, saturation), the mean ` +
        `of ${floors.length} runs in this one: ${floors.map((f) => `${f.micros.toFixed(1)} (${f.after})`).join(", ")} µs`,
    );
    notes.push(
      `bare grpc-js (node): the same handler from the Node generators at ${Math.round(bareNode.saturation.throughput)}/s, ` +
        "their core's limit, not the handler's: its latency is the floor of the Verify rows' (same driver), its " +
        "CPU per call is not a floor (a call costs more at a lower rate)",
    );
  } else {
    floorMicros = nodeFloor;
    notes.push(
      `x bare grpc-js: over the bare grpc-js handler from the Node generators (${nodeFloor.toFixed(1)} µs)`,
    );
  }
  notes.push(
    "latency: h2load from each request's send; node from each call's scheduled start, at shares of each row's own saturation",
  );
  notes.push(
    `Node generators' event loop delay p99 ms @25/50/75: ${rows
      .filter((r) => r.measured.driver === "node")
      .map((r) => `${r.label} ${generatorDelays(r.measured)}`)
      .join(", ")}`,
  );
  for (const r of rows) for (const n of r.measured.notes) notes.push(`${r.label}: ${n}`);
  notes.push(
    `waited for the replica and stores to go idle before each measurement: ${settled.map((t) => t.toFixed(1)).join(", ")} s`,
  );
  notes.push(
    `set-up (untimed): ${options.totpUsers} TOTP users seeded in ${seeding.totpSeconds?.toFixed(1)} s; ` +
      algorithms
        .map(
          (a) => `${options.passkeyUsers} ${a} passkeys enrolled in ${seeding[`${a}Seconds`]?.toFixed(1)} s`,
        )
        .join(", "),
  );
} catch (error) {
  broken = error instanceof Error ? (error.stack ?? error.message) : String(error);
  log(`bench:passkey failed: ${broken}`);
} finally {
  await cleanup();
}

const machine = describeMachine(versions, startedAt);
const stamp = machine.date.replaceAll(":", "-").replace(/\..*$/, "");
mkdirSync(options.outDir, { recursive: true });
const file = join(options.outDir, `passkey-verify-${stamp}.json`);
writeResultsJson(file, {
  command: `node bench/src/passkey-verify.ts ${process.argv.slice(2).join(" ")}`.trim(),
  code,
  machine,
  h2load: h2load ?? null,
  options: { ...options, basePort: undefined },
  policy,
  floorMicrosPerCall: floorMicros,
  rows,
  floorRuns,
  notes,
  seeding,
  seconds: (performance.now() - started) / 1000,
  error: broken ?? null,
});
if (rows.length > 0)
  console.log(
    `== Verify: passkey beside TOTP (1 replica, CPU per call at saturation)\n` +
      `${formatPasskeyTable(rows, floorMicros)}\n${notes.join("\n")}\n`,
  );
console.log(`written: ${relative(process.cwd(), file)}`);
process.exit(interrupted ? 130 : broken !== undefined ? 1 : 0);
