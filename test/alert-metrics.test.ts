// The figures deploy/prometheus/alerts.yml reads, from a replica process's Prometheus endpoint over
// HTTP: every call counted by status, the signing key's age against its schedule, each dependency's
// state, and the audit outbox backlog growing while PostgreSQL is down and draining when it is back.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { type Cluster, replicaBasePort, startCluster } from "./support/cluster.ts";
import { seedUsers, stepUpFlow, type User } from "./support/load.ts";

/** One sample of a scrape: the value of the first series named `name` whose labels hold `labels`. */
function sample(text: string, name: string, labels = ""): number | undefined {
  const line = text
    .split("\n")
    .find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(labels));
  return line === undefined ? undefined : Number(line.split(" ").at(-1));
}

describe("alerting figures on a replica's /metrics", () => {
  let postgres: OwnPostgres;
  let cluster: Cluster;
  let client: StepgateClient;
  let users: User[];
  // The Prometheus endpoint's port: beside the replicas', below the ephemeral range.
  const promPort = replicaBasePort() + 100;
  const scrape = async () => (await fetch(`http://127.0.0.1:${promPort}/metrics`)).text();
  /** Scrapes until `ok` holds (at most 20 s), and returns that scrape. */
  const scrapeUntil = async (what: string, ok: (text: string) => boolean) => {
    let text = "";
    for (let i = 0; i < 200; i++) {
      text = await scrape();
      if (ok(text)) return text;
      await sleep(100);
    }
    assert.fail(`${what}; last scrape:\n${text.split("\n").filter((l) => l.startsWith("stepgate_"))}`);
  };

  before(async () => {
    postgres = await startOwnPostgres();
    cluster = await startCluster({
      size: 1,
      databaseServerUrl: postgres.url,
      env: {
        OTEL_METRICS_EXPORTER: "prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT: String(promPort),
        STEPGATE_HEALTH_INTERVAL_MS: "100",
        STEPGATE_SIGNING_KEY_ROTATE_EVERY_S: "86400",
        STEPGATE_SIGNING_KEY_PUBLISH_LEAD_S: "600",
      },
    });
    client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    users = await seedUsers(client, 4);
  });
  after(async () => {
    client.close();
    await postgres.start().catch(() => {});
    await cluster.close();
    await postgres.destroy();
  });

  it("counts every StepUp and Verify call by status, OK included", async () => {
    const user = users[0] as User;
    await stepUpFlow(client, user);
    const text = await scrape();
    const calls = (method: string, code: number) =>
      sample(
        text,
        "stepgate_rpc_calls_total",
        `rpc_method="stepgate.v1.StepUpService/${method}",rpc_grpc_status_code="${code}"`,
      ) ?? 0;
    assert.ok(calls("StepUp", 0) >= 1, "StepUp calls that ended OK");
    assert.ok(calls("Verify", 0) >= 1, "Verify calls that ended OK");
  });

  it("publishes the signing key's age and the age its successor is due by", async () => {
    const text = await scrape();
    assert.equal(sample(text, "stepgate_signing_key_max_age"), 86_400 + 600);
    const age = sample(text, "stepgate_signing_key_age");
    assert.ok(age !== undefined && age >= 0 && age < 86_400, `the first key's age ${age} s`);
  });

  it("shows PostgreSQL down, the replica degraded and the audit backlog waiting, then drained", async () => {
    await scrapeUntil("postgresql up, an empty outbox", (t) => {
      const up = sample(t, "stepgate_dependency_up", 'dependency="postgresql"');
      return (
        up === 1 && sample(t, "stepgate_degraded") === 0 && sample(t, "stepgate_audit_outbox_entries") === 0
      );
    });
    await postgres.stop("SIGQUIT");
    await scrapeUntil("postgresql down, the replica degraded", (t) => {
      const up = sample(t, "stepgate_dependency_up", 'dependency="postgresql"');
      return up === 0 && sample(t, "stepgate_degraded") === 1;
    });
    // Step-ups go on from the cached factors; their audit events wait in the Redis outbox.
    for (const user of users.slice(1)) await stepUpFlow(client, user);
    const waiting = await scrapeUntil("events waiting in the outbox", (t) => {
      const age = sample(t, "stepgate_audit_outbox_oldest_age") ?? 0;
      return (sample(t, "stepgate_audit_outbox_entries") ?? 0) >= 3 && age > 0;
    });
    assert.equal(sample(waiting, "stepgate_dependency_up", 'dependency="redis"'), 1);
    process.stdout.write(
      `# outbox while postgresql was down: ${sample(waiting, "stepgate_audit_outbox_entries")} events, ` +
        `oldest ${sample(waiting, "stepgate_audit_outbox_oldest_age")} s\n`,
    );

    await postgres.start();
    await scrapeUntil("postgresql back, the outbox drained", (t) => {
      const up = sample(t, "stepgate_dependency_up", 'dependency="postgresql"');
      const empty = sample(t, "stepgate_audit_outbox_entries") === 0;
      return (
        up === 1 &&
        sample(t, "stepgate_degraded") === 0 &&
        empty &&
        sample(t, "stepgate_audit_outbox_oldest_age") === 0
      );
    });
  });

  it("publishes every stepgate_ metric deploy/prometheus/alerts.yml reads", async () => {
    const rules = readFileSync(join(import.meta.dirname, "../deploy/prometheus/alerts.yml"), "utf8");
    const read = new Set(rules.match(/\bstepgate_[a-z_]+/g));
    const published = new Set((await scrape()).match(/^stepgate_[a-z_]+/gm));
    assert.ok(read.size >= 8, `${read.size} metrics read`);
    assert.deepEqual(
      [...read].filter((m) => !published.has(m)),
      [],
      "read by the rules, not published",
    );
  });
});
