import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { createStepgateClient } from "@stepgate/client";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { seedUsers, stepUpFlow } from "./support/load.ts";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./support/otlp-receiver.ts";

const run = promisify(execFile);
const clientScript = join(import.meta.dirname, "support/traced-client.ts");

interface FlowResult {
  traceId: string;
  secrets: string[];
  subject: string;
  secondOutcome: string;
}

/** Renders a trace as an indented tree: `service: name [kind]`. */
function tree(spans: ReceivedSpan[]): string[] {
  const byParent = new Map<string, ReceivedSpan[]>();
  for (const s of spans) byParent.set(s.parentSpanId, [...(byParent.get(s.parentSpanId) ?? []), s]);
  const ids = new Set(spans.map((s) => s.spanId));
  const lines: string[] = [];
  const walk = (s: ReceivedSpan, depth: number) => {
    lines.push(`${"  ".repeat(depth)}${s.service}: ${s.name}`);
    for (const child of byParent.get(s.spanId) ?? []) walk(child, depth + 1);
  };
  for (const root of spans.filter((s) => !ids.has(s.parentSpanId))) walk(root, 0);
  return lines;
}

describe("telemetry: one trace per flow, metrics and logs", () => {
  let receiver: OtlpReceiver;
  let cluster: Cluster;
  let flow: FlowResult;
  let spans: ReceivedSpan[];
  const promPort = 40_000 + Math.floor(Math.random() * 10_000);
  const otlpEnv = () => ({
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
    OTEL_BSP_SCHEDULE_DELAY: "100",
  });

  before(async () => {
    receiver = await startOtlpReceiver();
    cluster = await startCluster({
      size: 1,
      env: {
        ...otlpEnv(),
        OTEL_SERVICE_NAME: "stepgate",
        OTEL_METRICS_EXPORTER: "prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT: String(promPort),
      },
    });
    const replica = cluster.replicas[0];
    assert.ok(replica);
    const { stdout } = await run(process.execPath, [clientScript, replica.address], {
      env: { PATH: process.env.PATH, ...otlpEnv(), OTEL_METRICS_EXPORTER: "none" },
      timeout: 60_000,
    });
    flow = JSON.parse(stdout.trim().split("\n").at(-1) as string) as FlowResult;
    // Bounded wait for the replica's batch to arrive.
    for (let i = 0; i < 100; i++) {
      spans = receiver.spans.filter((s) => s.traceId === flow.traceId);
      if (
        spans.some((s) => s.name === "stepgate.grant.sign") &&
        spans.filter((s) => s.service === "stepgate").length >= 8
      )
        break;
      await sleep(100);
    }
    process.stdout.write(
      `# trace ${flow.traceId}\n${tree(spans)
        .map((l) => `#   ${l}`)
        .join("\n")}\n`,
    );
  });
  after(async () => {
    await cluster.close();
    await receiver.close();
  });

  it("joins the calling service, the client, the server and its stores in one trace", () => {
    const root = spans.find((s) => s.name === "payments.transfer");
    assert.ok(root, "the calling service's span");
    assert.equal(root.service, "payments");
    const byId = new Map(spans.map((s) => [s.spanId, s]));
    const ancestors = (s: ReceivedSpan) => {
      const chain: string[] = [];
      for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) chain.push(p.name);
      return chain;
    };
    const serverStepUp = spans.find(
      (s) => s.service === "stepgate" && s.name.endsWith("StepUpService/StepUp"),
    );
    assert.ok(serverStepUp, "the server's StepUp span");
    assert.deepEqual(ancestors(serverStepUp).slice(-2), ["stepgate.client/StepUp", "payments.transfer"]);
    const policy = spans.find((s) => s.name === "stepgate.policy.evaluate");
    assert.ok(policy);
    assert.ok(ancestors(policy).includes(serverStepUp.name));
    for (const name of ["stepgate.factor.verify", "stepgate.grant.sign"]) {
      const span = spans.find((s) => s.name === name);
      assert.ok(span, name);
      assert.ok(
        ancestors(span).some((a) => a.endsWith("StepUpService/Verify")),
        `${name} under the server's Verify span`,
      );
    }
    const store = spans.filter(
      (s) => s.service === "stepgate" && (s.attributes["db.system"] ?? s.attributes["db.system.name"]),
    );
    assert.ok(
      store.some((s) =>
        String(s.attributes["db.system"] ?? s.attributes["db.system.name"]).includes("postgres"),
      ),
      "PostgreSQL spans",
    );
    assert.ok(
      store.some((s) =>
        String(s.attributes["db.system"] ?? s.attributes["db.system.name"]).includes("redis"),
      ),
      "Redis spans",
    );
  });

  it("puts action, level, method, outcome and replica on the domain spans", () => {
    const policy = spans.find((s) => s.name === "stepgate.policy.evaluate");
    assert.equal(policy?.attributes["stepgate.action"], "payments.transfer");
    assert.equal(policy?.attributes["stepgate.acr.required"], "aal2");
    assert.equal(policy?.attributes["stepgate.outcome"], "challenge");
    assert.equal(policy?.attributes["stepgate.replica"], "replica-1");
    const check = spans.find((s) => s.name === "stepgate.factor.verify");
    assert.equal(check?.attributes["stepgate.method"], "totp");
    assert.equal(check?.attributes["stepgate.outcome"], "ok");
    assert.equal(spans.find((s) => s.name === "stepgate.grant.sign")?.attributes["stepgate.acr"], "aal2");
  });

  it("never exports a code, secret, grant or raw subject id", () => {
    const exported = receiver.bodies.join("\n");
    // What is searched holds the flow: its trace from both processes, and the replica's lines for its calls.
    assert.ok(exported.includes(flow.traceId), "the flow's trace was exported");
    assert.deepEqual([...new Set(spans.map((s) => s.service))].sort(), ["payments", "stepgate"]);
    for (const secret of [...flow.secrets, flow.subject]) {
      assert.equal(
        exported.includes(secret),
        false,
        `exported telemetry holds ${secret === flow.subject ? "the subject" : "a secret"}`,
      );
    }
    const logs = cluster.replicas[0]?.lines.join("\n") ?? "";
    assert.ok(logs.includes(`"trace_id":"${flow.traceId}"`), "the replica logged the flow's calls");
    for (const secret of flow.secrets)
      assert.equal(logs.includes(secret), false, "a log line holds a secret");
  });

  it("writes one JSON log line per call, carrying the trace and span ids", () => {
    const calls = (cluster.replicas[0]?.lines ?? [])
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === "call" && l.trace_id === flow.traceId);
    assert.deepEqual(
      calls.map((c) => c.rpc),
      [
        "stepgate.v1.StepUpService/StepUp",
        "stepgate.v1.StepUpService/Verify",
        "stepgate.v1.StepUpService/CheckGrant",
        "stepgate.v1.StepUpService/GetJwks",
        "stepgate.v1.StepUpService/StepUp",
      ],
    );
    for (const c of calls) {
      assert.equal(c.status, "OK");
      assert.equal(typeof c.ms, "number");
      assert.match(String(c.span_id), /^[0-9a-f]{16}$/);
    }
  });

  it("logs no error while healthy stores start and serve the flow", () => {
    const troubles = (cluster.replicas[0]?.lines ?? [])
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.level === "error" || l.level === "fatal");
    assert.deepEqual(troubles, []);
  });

  it("counts the calls in the Prometheus histograms and outcome counters", async () => {
    const text = await (await fetch(`http://127.0.0.1:${promPort}/metrics`)).text();
    const sample = (name: string, labels: string) => {
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(labels));
      return line === undefined ? undefined : Number(line.split(" ").at(-1));
    };
    // The flow made two StepUp calls (a challenge, then a grant from the elevation) and one Verify.
    assert.equal(sample("stepgate_step_up_duration_count", 'stepgate_outcome="challenge"'), 1);
    assert.equal(sample("stepgate_step_up_duration_count", 'stepgate_outcome="grant"'), 1);
    assert.equal(sample("stepgate_verify_duration_count", 'stepgate_outcome="success"'), 1);
    assert.match(text, /stepgate_step_up_duration_bucket\{[^}]*le="0.05"/);
    assert.equal(sample("stepgate_verifications_total", 'stepgate_result="success"'), 1);
    assert.equal(
      sample("stepgate_rpc_errors_total", 'rpc_grpc_status_code="7"'),
      1,
      "the one refused CheckGrant, by status code",
    );
    assert.match(text, /stepgate_calls_shed_total\S* 0/);
    assert.match(text, /stepgate_calls_rate_limited_total\S* 0/);
    // Admission gauges: the adaptive limit (default start 32), calls waiting by priority, the loop's load.
    assert.ok((sample("stepgate_admission_limit", "") ?? 0) >= 8, "the concurrency limit is published");
    assert.equal(sample("stepgate_admission_queued", 'priority="critical"'), 0);
    const loop = sample("stepgate_event_loop_utilization", "");
    assert.ok(loop !== undefined && loop >= 0 && loop <= 1, `event loop utilization ${loop}`);
    // The process's memory by kind, in bytes: the heap fits in the resident set.
    const rss = sample("stepgate_process_memory", 'kind="rss"') ?? 0;
    const heapUsed = sample("stepgate_process_memory", 'kind="heap_used"') ?? 0;
    assert.ok(heapUsed > 0 && heapUsed < rss, `heap_used ${heapUsed} B, rss ${rss} B`);
    assert.ok((sample("stepgate_process_memory", 'kind="external"') ?? 0) > 0);
  });
});

describe("telemetry with the collector down", () => {
  let cluster: Cluster;
  before(async () => {
    // Nothing listens on port 9 of loopback (discard): every export fails.
    cluster = await startCluster({
      size: 1,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9", OTEL_BSP_SCHEDULE_DELAY: "50" },
    });
  });
  after(() => cluster.close());

  it("still answers every call", async () => {
    const client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    try {
      const users = await seedUsers(client, 5);
      for (const user of users) await stepUpFlow(client, user);
    } finally {
      client.close();
    }
  });
});
