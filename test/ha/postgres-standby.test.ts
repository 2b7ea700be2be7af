// PostgreSQL leader-follower: a primary and a synchronous streaming standby (pg_basebackup), each a
// real process on loopback, behind HAProxy as the stable endpoint (the standby as its backup).
// One Stepgate replica reaches PostgreSQL only through HAProxy. Under a steady flow load the
// primary is SIGKILLed, then the standby is promoted: degraded mode carries the flows through,
// every write acknowledged before the kill is on the promoted standby, and what was closed stays
// closed. Prints its figures.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { printFlowLoadReport } from "@stepgate/testkit/flow-load";
import { type OwnHaproxy, startOwnHaproxy } from "@stepgate/testkit/own-haproxy";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import pg from "pg";
import { assertClosed } from "../support/closed-state.ts";
import { closeStateWith, flowLoadKeepingFailures } from "../support/ha.ts";
import { type Harness, startStepgate } from "../support/stepgate.ts";

const load = { ratePerSecond: 10, durationMs: 16_000, killAtMs: 4000, promoteAfterMs: 1500 };

/** Rows on `url` (a connection of its own, 5 s bound). */
async function rows<T extends pg.QueryResultRow>(url: string, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000, query_timeout: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

/** The same URL on another server (port), same database. */
const onPort = (url: string, port: number) => {
  const u = new URL(url);
  u.port = String(port);
  return u.toString();
};

describe("PostgreSQL primary killed and its synchronous standby promoted, under load", () => {
  let primary: OwnPostgres;
  let standby: OwnPostgres;
  let proxy: OwnHaproxy;
  let h: Harness;
  let subjects: FlowSubject[];
  let closing: FlowSubject[];
  before(async () => {
    primary = await startOwnPostgres();
    standby = await startOwnPostgres({ standbyOf: primary, applicationName: "standby" });
    // Synchronous from here on: a commit returns once the standby has it.
    await rows(primary.url, "alter system set synchronous_standby_names = 'standby'");
    await rows(primary.url, "select pg_reload_conf()");
    for (let i = 0; i < 100; i++) {
      const state = await rows<{ sync_state: string }>(
        primary.url,
        "select sync_state from pg_stat_replication",
      );
      if (state[0]?.sync_state === "sync") break;
      await sleep(100);
    }
    const [replication] = await rows<{ sync_state: string }>(
      primary.url,
      "select sync_state from pg_stat_replication",
    );
    assert.equal(replication?.sync_state, "sync", "the standby is synchronous");
    proxy = await startOwnHaproxy({
      servers: [
        { name: "primary", port: primary.port },
        { name: "standby", port: standby.port, backup: true },
      ],
    });
    h = await startStepgate({
      databaseServerUrl: proxy.rewriteUrl(primary.url),
      healthIntervalMs: 200,
      env: { STEPGATE_POSTGRES_TIMEOUT_MS: "1000", DATABASE_POOL_SIZE: "4" },
    });
    subjects = await seedSubjects(h.client, Math.ceil(load.ratePerSecond * 16) + 10);
    closing = await seedSubjects(h.client, 3, { prefix: "closing-" });
  });
  after(async () => {
    await h?.close();
    await proxy?.destroy();
    await standby?.destroy();
    await primary?.destroy();
  });

  it("0 failed flows, 0 acknowledged writes lost, nothing closed re-opens", async () => {
    const dbOnPrimary = onPort(h.db.url, primary.port);
    const dbOnStandby = onPort(h.db.url, standby.port);
    const { flows, failures } = flowLoadKeepingFailures(h.client, subjects, load);
    const closed = await closeStateWith(h.client, closing);
    await sleep(Math.max(0, load.killAtMs - flows.elapsedMs()));
    // Everything committed now was acknowledged to its writer: all of it must survive.
    const factorsBefore = await rows<{ id: string; last_step: string | null }>(
      dbOnPrimary,
      "select id::text, last_step::text from factors",
    );
    const [auditBefore] = await rows<{ n: string }>(
      dbOnPrimary,
      "select count(*)::text as n from audit_events",
    );
    const logsBefore = h.logs.length;
    await primary.stop("SIGKILL");
    const killedAt = flows.markFaultStart();
    await sleep(load.promoteAfterMs);
    await rows(onPort(standby.url, standby.port), "select pg_promote(true, 30)");
    const promotedAt = flows.markFaultEnd();
    const report = await flows.done;
    printFlowLoadReport("PostgreSQL failover", report);
    const factorsAfter = new Map(
      (
        await rows<{ id: string; last_step: string | null }>(
          dbOnStandby,
          "select id::text, last_step::text from factors",
        )
      ).map((r) => [r.id, r.last_step]),
    );
    const [auditAfter] = await rows<{ n: string }>(
      dbOnStandby,
      "select count(*)::text as n from audit_events",
    );
    const lost = factorsBefore.filter(
      (r) => !factorsAfter.has(r.id) || Number(factorsAfter.get(r.id) ?? -1) < Number(r.last_step ?? -1),
    );
    const moves = h.logs
      .slice(logsBefore)
      .filter((l) => l.includes('"dependency down"') || l.includes('"dependency up"'));
    console.log(
      `# primary SIGKILLed at ${Math.round(killedAt)} ms, standby promoted at ${Math.round(promotedAt)} ms; ` +
        `HAProxy now sends to ${await proxy.activeServer()}; factors ${factorsBefore.length} before, ` +
        `${lost.length} lost or behind after; audit events ${auditBefore?.n} before, ${auditAfter?.n} after; ` +
        `failed calls ${failures.length} (${[...new Set(failures.map((f) => `${f.rpc} ${f.failure}`))].join(", ")}); ` +
        `dependency changes logged: ${moves.length}`,
    );
    assert.deepEqual(
      lost,
      [],
      "every factor row and TOTP step committed before the kill is on the promoted standby",
    );
    assert.ok(
      Number(auditAfter?.n) >= Number(auditBefore?.n),
      "no audit event stored before the kill is lost",
    );
    assert.equal(report.replays, 0, "no TOTP code accepted twice");
    assert.equal(report.rpcs.ReplayProbe.failed, 0, "every replayed code refused");
    assert.deepEqual(
      failures.filter((f) => f.rpc === "StepUp" || f.rpc === "Verify").map((f) => `${f.rpc} ${f.failure}`),
      [],
      "degraded mode carries every StepUp and Verify through the failover",
    );
    await assertClosed(h.client, closed, "after the failover");
    // Writes reach the promoted standby through the same endpoint.
    const fresh = await seedSubjects(h.client, 1, { prefix: "after-" });
    const [found] = await rows<{ n: string }>(
      dbOnStandby,
      `select count(*)::text as n from factors where id::text = '${fresh[0]?.factorId}'`,
    );
    assert.equal(found?.n, "1", "an enrolment after the failover is stored on the new primary");
  });
});
