// The example policy's rules (services/stepgate/policy/example.yaml) through two replica processes
// on a PostgreSQL of the test's own: a payee never paid asks for every transfer (new_payee, a fact
// kept as a keyed hash), a large amount asks for a passkey (large_amount), a network outside the
// corporate ranges asks for a fresh factor (outside_corporate_network); with PostgreSQL stopped the
// fact cannot be read and the stricter requirement holds; SIGHUP reloads the rules, and a bad file
// leaves the old ones in force.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Method } from "@stepgate/api";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { totpCode } from "@stepgate/testkit/totp-code";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { newKey, newSession } from "./support/flows.ts";
import { writePolicy } from "./support/stepgate.ts";

const examplePolicy = readFileSync(
  join(import.meta.dirname, "../services/stepgate/policy/example.yaml"),
  "utf8",
);
const transfer = (payee: string, amount = "120.00") => ({ amount, currency: "EUR", payee });

describe("policy rules in CEL, through replica processes", () => {
  let postgres: OwnPostgres | undefined;
  let cluster: Cluster | undefined;
  let client: StepgateClient;
  let policyFile: string;
  // One subject per test that answers a challenge: each accepts one code per 30 s step.
  let payer: FlowSubject;
  let offline: FlowSubject;

  before(async () => {
    postgres = await startOwnPostgres();
    policyFile = writePolicy(examplePolicy);
    cluster = await startCluster({
      size: 2,
      databaseServerUrl: postgres.url,
      env: { STEPGATE_POLICY_FILE: policyFile, STEPGATE_HEALTH_INTERVAL_MS: "100" },
    });
    client = createStepgateClient({ target: cluster.target(), caller: "payments" });
    [payer, offline] = (await seedSubjects(client, 2)) as [FlowSubject, FlowSubject];
  });
  after(async () => {
    client?.close();
    await postgres?.start().catch(() => {});
    await cluster?.close();
    await postgres?.destroy();
  });

  const stepUp = (sessionId: string, action: string, more: Record<string, unknown> = {}, who = payer) =>
    client.stepUp.stepUp({ subject: who.subject, sessionId, action, ...more });
  // The code of the step after the confirming one (one step of skew is accepted): one per subject.
  const answer = async (
    sessionId: string,
    action: string,
    challengeId: string,
    t?: ReturnType<typeof transfer>,
    who = payer,
  ) =>
    client.stepUp.verify({
      challengeId,
      subject: who.subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: totpCode(who.secret, Math.floor(Date.now() / 1000) + 30) } },
      idempotencyKey: newKey(),
      ...(t ? { transaction: t } : {}),
    });

  it("new_payee: a payee never paid is proved every time; once paid, the session's elevation serves", async () => {
    const sessionId = newSession();
    const first = await stepUp(sessionId, "payments.transfer", { transaction: transfer("ACME Ltd") });
    assert.equal(first.rule, "new_payee");
    assert.equal(first.outcome.case, "challenge");
    assert.equal(first.outcome.value.maxAge, 0);
    const verified = await answer(
      sessionId,
      "payments.transfer",
      first.outcome.value.challengeId,
      transfer("ACME Ltd"),
    );
    const claims = await client
      .verifyGrant(verified.grant?.token ?? "", { action: "payments.transfer" })
      .catch((e) => e);
    assert.equal(claims.reason, "GRANT_SINGLE_USE", "max_age 0: a single-use grant");

    const again = await stepUp(sessionId, "payments.transfer", { transaction: transfer("ACME Ltd") });
    assert.deepEqual([again.rule, again.outcome.case], ["", "grant"]);
    const other = await stepUp(sessionId, "payments.transfer", { transaction: transfer("Globex") });
    assert.deepEqual([other.rule, other.outcome.case], ["new_payee", "challenge"]);

    // The audit trail names the rule; the facts table holds keyed hashes, never the payee or subject.
    const events = await cluster?.db.query<{ details: Record<string, unknown> }>(
      "select details from audit_events where subject = $1 and type = 'challenge.created' order by id",
      [payer.subject],
    );
    assert.equal(events?.[0]?.details.rule, "new_payee");
    const facts = await cluster?.db.query<{ fact: string }>("select fact from subject_facts");
    assert.ok((facts?.length ?? 0) >= 2, "the payee and the step-up");
    assert.doesNotMatch(JSON.stringify(facts), /ACME|payer|load-/);
  });

  it("large_amount: above 1,000 EUR only a passkey will do; this subject has none", async () => {
    const big = await stepUp(newSession(), "payments.transfer", {
      transaction: transfer("ACME Ltd", "5000.00"),
    });
    assert.equal(big.rule, "large_amount");
    assert.equal(big.outcome.case, "enrollmentRequired");
    assert.deepEqual(big.outcome.value.methods, [Method.PASSKEY]);
  });

  it("outside_corporate_network: a fresh factor outside 10/8 and 192.168/16, a working day's inside", async () => {
    const inside = await stepUp(newSession(), "account.view_statements", {
      context: { network: "10.20.30.40" },
    });
    assert.deepEqual(
      [inside.rule, inside.outcome.case === "challenge" && inside.outcome.value.maxAge],
      ["", 28800],
    );
    const outside = await stepUp(newSession(), "account.view_statements", {
      context: { network: "203.0.113.9" },
    });
    assert.deepEqual(
      [outside.rule, outside.outcome.case === "challenge" && outside.outcome.value.maxAge],
      ["outside_corporate_network", 300],
    );
    // No network at all: the rule says so itself (`!("network" in context)`).
    const none = await stepUp(newSession(), "account.view_statements");
    assert.equal(none.rule, "outside_corporate_network");
  });

  it("with PostgreSQL stopped, a paid payee's fact cannot be read: the stricter rule holds", async () => {
    assert.ok(postgres && cluster);
    const sessionId = newSession();
    const pay = { transaction: transfer("Initech") };
    const first = await stepUp(sessionId, "payments.transfer", pay, offline);
    assert.equal(first.outcome.case, "challenge");
    await answer(
      sessionId,
      "payments.transfer",
      first.outcome.value.challengeId,
      transfer("Initech"),
      offline,
    );
    const paid = await stepUp(sessionId, "payments.transfer", pay, offline);
    assert.deepEqual([paid.rule, paid.outcome.case], ["", "grant"]);

    await postgres.stop("SIGQUIT");
    for (const replica of cluster.replicas) await loggedDown(replica.lines);
    const down = await stepUp(sessionId, "payments.transfer", pay, offline);
    assert.deepEqual(
      [down.rule, down.outcome.case],
      ["new_payee", "challenge"],
      "never the weaker requirement",
    );
    await postgres.start();
  });

  it("SIGHUP reloads the rules; a file that does not compile leaves the old ones in force", async () => {
    assert.ok(cluster);
    const [replica] = cluster.replicas;
    assert.ok(replica?.pid);
    const one = createStepgateClient({ target: replica.address, caller: "payments" });
    try {
      const ask = () =>
        one.stepUp.stepUp({
          subject: payer.subject,
          sessionId: newSession(),
          action: "account.view_statements",
        });
      writeFileSync(policyFile, examplePolicy.replace("in_cidr(context.network", "in_cidrx(context.network"));
      process.kill(replica.pid, "SIGHUP");
      await loggedLine(replica.lines, '"policy not reloaded; the old one stays in force"');
      assert.ok(
        replica.lines.some((l) => l.includes("unknown field") || l.includes("outside_corporate_network")),
      );
      assert.equal((await ask()).rule, "outside_corporate_network");

      writeFileSync(policyFile, examplePolicy.replace('!("network" in context) || ', "false && "));
      process.kill(replica.pid, "SIGHUP");
      await loggedLine(replica.lines, '"policy reloaded"');
      assert.ok(
        replica.lines.some((l) => l.includes('"policy reloaded"') && l.includes("account.view_statements")),
      );
      assert.equal((await ask()).rule, "");
    } finally {
      one.close();
      writeFileSync(policyFile, examplePolicy);
    }
  });
});

/** Waits (at most 10 s) until a replica's log says PostgreSQL is down. */
async function loggedDown(lines: string[]): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (lines.some((l) => l.includes('"dependency down"') && l.includes('"postgresql"'))) return;
    await sleep(50);
  }
  assert.fail("no replica logged PostgreSQL down");
}

/** Waits (at most 5 s) for a log line containing `text` written after this call. */
async function loggedLine(lines: string[], text: string): Promise<void> {
  const from = lines.length;
  for (let i = 0; i < 100; i++) {
    if (lines.slice(from).some((l) => l.includes(text))) return;
    await sleep(50);
  }
  assert.fail(`no line with ${text}: ${lines.slice(from).join("\n").slice(0, 2000)}`);
}
