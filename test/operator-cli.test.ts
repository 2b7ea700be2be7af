// The operator's CLI (`stepgate`, packages/cli) as a process of its own against two replica
// processes under mutual TLS: every command, its output and exit code, the audit event naming the
// operator, and the effect through the ordinary API (CheckGrant, Verify, GetJwks). Ordinary
// callers' certificates, operators without the scope and bad input change nothing.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { subjectTokenHeader } from "@stepgate/api";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import {
  type CertificateFiles,
  createTestPki,
  startTestIdentityProvider,
  type TestIdentityProvider,
  type TestPki,
} from "@stepgate/testkit";
import { codeForStep, totpStep } from "@stepgate/testkit/totp-code";
import { type Cluster, startCluster } from "./support/cluster.ts";
import { expectFailure } from "./support/errors.ts";
import { newSession, newSubject } from "./support/flows.ts";
import { type CliRun, runCli } from "./support/operator-cli.ts";
import { testPolicy, writePolicy } from "./support/stepgate.ts";

/** A subject enrolled with TOTP, and the next code it may prove with. */
interface Enrolled {
  subject: string;
  factorId: string;
  secret: string;
  nextCode(): string;
}

const paymentsId = "spiffe://example.org/ns/prod/sa/payments";
const aliceId = "spiffe://example.org/ns/ops/sa/alice";

describe("the operator CLI, under mutual TLS", () => {
  let pki: TestPki;
  let idp: TestIdentityProvider;
  let cluster: Cluster;
  let payments: StepgateClient;
  let fleetCa: string;
  const leaf: Record<string, CertificateFiles> = {};
  // A subject with a TOTP factor, enrolled through the ordinary API; each test that verifies has its own.
  let user: Enrolled;
  let subject = "";
  let factorId = "";

  const as = (name: string, args: string[], target = cluster.target()): Promise<CliRun> => {
    const files = leaf[name] as CertificateFiles;
    return runCli([
      ...args,
      "--target",
      target,
      "--cert",
      files.certFile,
      "--key",
      files.keyFile,
      "--ca",
      fleetCa,
    ]);
  };
  const alice = (...args: string[]) => as("alice", args);
  const oneLine = (run: CliRun) => assert.equal(run.stderr.trimEnd().split("\n").length, 1, run.stderr);
  const stepUp = (who: Enrolled, sessionId: string) =>
    payments.stepUp.stepUp(
      { subject: who.subject, sessionId, action: "payments.transfer" },
      { timeoutMs: 5000 },
    );
  const verify = async (who: Enrolled, sessionId: string, code = who.nextCode()) => {
    const challenge = (await stepUp(who, sessionId)).outcome;
    assert.equal(challenge.case, "challenge");
    return payments.stepUp.verify({
      challengeId: challenge.value.challengeId,
      ...{ subject: who.subject, sessionId, action: "payments.transfer" },
      proof: { kind: { case: "totpCode", value: code } },
      idempotencyKey: randomUUID(),
    });
  };
  const enrol = async (): Promise<Enrolled> => {
    const name = newSubject();
    const token = await idp.token({ sub: name, auth_time: Math.floor(Date.now() / 1000) });
    const headers = { [subjectTokenHeader]: token };
    const enrolled = await payments.factors.enrollTotp(
      { subject: name, label: "Phone", accountName: "a@example.com" },
      { headers },
    );
    // A code is accepted once, and only within a step of now: each proof takes the next step it may.
    let last = 0;
    const nextCode = () => {
      last = Math.max(last + 1, totpStep(Math.floor(Date.now() / 1000)));
      return codeForStep(enrolled.secret, last);
    };
    await payments.factors.confirmTotp(
      { subject: name, factorId: enrolled.factorId, code: nextCode() },
      { headers },
    );
    return { subject: name, factorId: enrolled.factorId, secret: enrolled.secret, nextCode };
  };
  const auditOf = async (type: string, about = subject) => {
    const run = await alice("audit", "tail", "--subject", about, "--kind", type, "--json");
    assert.equal(run.exit, 0, run.stderr);
    return (run.json as { events: { caller: string; detailsJson: string }[] }).events;
  };

  before(async () => {
    pki = createTestPki();
    const fleet = pki.authority("fleet");
    fleetCa = fleet.certFile;
    leaf.replica = fleet.issue("replica", ["IP:127.0.0.1", "DNS:localhost"]);
    leaf.payments = fleet.issue("payments", [`URI:${paymentsId}`]);
    leaf.alice = fleet.issue("alice", [`URI:${aliceId}`]);
    leaf.auditor = fleet.issue("auditor", ["DNS:auditor.ops.internal"]);
    leaf.stranger = fleet.issue("stranger", ["URI:spiffe://example.org/ns/prod/sa/stranger"]);
    idp = await startTestIdentityProvider();
    const policy = `${testPolicy}
callers:
  payments: { peers: ["${paymentsId}"], actions: ["*"], factors: manage }
operators:
  alice: { peers: ["${aliceId}"], scopes: ["*"] }
  auditor: { peers: [auditor.ops.internal], scopes: [status, factors.read, audit.read] }
subject_proof:
  issuers: [{ issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audiences: [${idp.audience}] }]
`;
    const replica = leaf.replica as CertificateFiles;
    cluster = await startCluster({
      size: 2,
      env: {
        STEPGATE_INSECURE_DEV: "0",
        STEPGATE_POLICY_FILE: writePolicy(policy),
        STEPGATE_TLS_CERT_FILE: replica.certFile,
        STEPGATE_TLS_KEY_FILE: replica.keyFile,
        STEPGATE_TLS_CLIENT_CA_FILE: fleetCa,
      },
    });
    payments = createStepgateClient({
      target: cluster.target(),
      caller: "payments",
      replicaRetryRounds: 0,
      tls: { ...(leaf.payments as CertificateFiles), caFile: fleetCa },
      revocationFeed: { enabled: false },
    });
    user = await enrol();
    ({ subject, factorId } = user);
  });
  after(async () => {
    payments?.close();
    await cluster?.close();
    await idp?.close();
    pki?.dispose();
  });

  it("status: one row per replica, with its dependencies and signing keys", async () => {
    const human = await alice("status");
    assert.equal(human.exit, 0, human.stderr);
    assert.match(human.stdout, /replica-1 +SERVING/);
    assert.match(human.stdout, /replica-2 +SERVING/);
    assert.match(human.stdout, /postgresql up, redis up/);
    const json = await alice("status", "--json");
    const rows = (json.json as { replicas: { reachable: boolean; status: Record<string, unknown> }[] })
      .replicas;
    assert.deepEqual(
      rows.map((r) => [r.reachable, r.status.replicaId, r.status.serving]),
      [
        [true, "replica-1", true],
        [true, "replica-2", true],
      ],
    );
    const keys = rows[0]?.status.signingKeys as { state: string }[];
    assert.ok(
      keys.some((k) => k.state === "SIGNING_KEY_STATE_CURRENT"),
      JSON.stringify(keys),
    );
  });

  it("refuses an ordinary caller's certificate and an unknown one, and an operator without the scope", async () => {
    const caller = await as("payments", ["factors", "list", subject]);
    assert.equal(caller.exit, 4);
    assert.match(caller.stderr, /PermissionDenied OPERATOR_NOT_ALLOWED/);
    oneLine(caller);
    const stranger = await as("stranger", ["subject", "unlock", subject]);
    assert.equal(stranger.exit, 4);
    assert.match(stranger.stderr, /names no operator in the policy \(Unauthenticated CALLER_UNKNOWN\)/);
    const strangerStatus = await as("stranger", ["status"]);
    assert.equal(strangerStatus.exit, 4);
    assert.match(strangerStatus.stdout, /UNREACHABLE|CALLER_UNKNOWN/);
    const auditor = await as("auditor", ["factors", "remove", subject, factorId]);
    assert.equal(auditor.exit, 4);
    assert.match(auditor.stderr, /not allowed to run factors\.manage commands/);
    const removed = await as("payments", ["factors", "remove", subject, factorId]);
    assert.equal(removed.exit, 4);
    const listed = await as("auditor", ["factors", "list", subject, "--json"]);
    assert.equal(listed.exit, 0, listed.stderr);
    assert.deepEqual(
      (listed.json as { factors: { factorId: string }[] }).factors.map((f) => f.factorId),
      [factorId],
    );
  });

  it("refuses bad input with one line, before or at the service, and changes nothing", async () => {
    const cases: [string[], number, RegExp][] = [
      [["factors", "list", ""], 2, /subject is required/],
      [["factors", "list", "x".repeat(257)], 2, /at most 256 bytes/],
      [["factors", "remove", subject, "not-a-factor"], 2, /is not a factor id/],
      [["factors", "remove", subject, randomUUID()], 5, /NotFound FACTOR_NOT_FOUND/],
      [["sessions", "end", subject, "s-1", "--all"], 2, /--all is not supported/],
      [["sessions", "end", subject], 2, /session id is required/],
      [["keys", "rotate", "--retire-previous"], 2, /--retire-previous needs --now/],
      [["audit", "tail", "--since", "yesterday"], 2, /--since must be/],
      [["audit", "tail", "--limit", "0"], 2, /--limit must be a whole number from 1 to 1000/],
      [["factors", "list", subject, "--now"], 2, /--now is not an option of factors list/],
      [["frobnicate"], 2, /unknown command "frobnicate"/],
    ];
    for (const [args, exit, message] of cases) {
      const run = await alice(...args);
      assert.equal(run.exit, exit, `${args.join(" ")}: ${run.stderr}`);
      assert.match(run.stderr, message);
      oneLine(run);
    }
    const listed = await alice("factors", "list", subject);
    assert.match(listed.stdout, new RegExp(`${factorId} +totp +active +Phone`));
  });

  it("sessions end: the session's grant fails CheckGrant, and the audit names the operator", async () => {
    const who = await enrol();
    const sessionId = newSession();
    const { grant } = await verify(who, sessionId);
    const run = await alice("sessions", "end", who.subject, sessionId);
    assert.equal(run.exit, 0, run.stderr);
    assert.match(run.stdout, /ended session/);
    await expectFailure(
      payments.stepUp.checkGrant({ token: grant?.token ?? "", action: "payments.transfer" }),
      Code.PermissionDenied,
      "GRANT_REVOKED",
    );
    const [event] = await auditOf("session.ended", who.subject);
    assert.equal(event?.caller, "operator:alice");
    assert.deepEqual(JSON.parse(event?.detailsJson ?? "{}"), {
      operator: "alice",
      operator_identity: aliceId,
      command: "sessions.end",
    });
  });

  it("subject unlock: a locked subject's right code is accepted again", async () => {
    const who = await enrol();
    const sessionId = newSession();
    const wrong = (code: string) => (code === "000000" ? "111111" : "000000");
    // testPolicy locks after 8 consecutive failures; a challenge takes 5 attempts.
    for (let failures = 0; failures < 8; ) {
      const challenge = (await stepUp(who, sessionId)).outcome;
      assert.equal(challenge.case, "challenge");
      for (let i = 0; i < 5 && failures < 8; i++, failures++) {
        await expectFailure(
          payments.stepUp.verify({
            challengeId: challenge.value.challengeId,
            ...{ subject: who.subject, sessionId, action: "payments.transfer" },
            proof: {
              kind: { case: "totpCode", value: wrong(codeForStep(who.secret, totpStep(Date.now() / 1000))) },
            },
            idempotencyKey: randomUUID(),
          }),
          Code.PermissionDenied,
          "WRONG_CODE",
        );
      }
    }
    await expectFailure(verify(who, sessionId, "000000"), Code.ResourceExhausted, "SUBJECT_LOCKED");
    const run = await alice("subject", "unlock", who.subject, "--json");
    assert.equal(run.exit, 0, run.stderr);
    assert.deepEqual(run.json, { subject: who.subject, hadFailures: true });
    const { grant } = await verify(who, sessionId);
    assert.ok(grant?.token);
    const [event] = await auditOf("subject.unlocked", who.subject);
    assert.equal(event?.caller, "operator:alice");
  });

  it("factors remove: the factor is gone and a grant it produced fails CheckGrant", async () => {
    const { grant } = await verify(user, newSession());
    const run = await alice("factors", "remove", subject, factorId);
    assert.equal(run.exit, 0, run.stderr);
    await expectFailure(
      payments.stepUp.checkGrant({ token: grant?.token ?? "", action: "payments.transfer" }),
      Code.PermissionDenied,
      "GRANT_REVOKED",
    );
    const listed = await alice("factors", "list", subject);
    assert.match(listed.stdout, /has no factors/);
    const [event] = await auditOf("factor.removed");
    assert.deepEqual(JSON.parse(event?.detailsJson ?? "{}"), {
      factor_id: factorId,
      operator: "alice",
      operator_identity: aliceId,
      command: "factors.manage",
    });
    const reads = await auditOf("admin.");
    assert.ok(
      reads.length >= 1 && reads.every((e) => e.caller.startsWith("operator:")),
      JSON.stringify(reads),
    );
  });

  it("keys rotate --now: the new key is in GetJwks; --retire-previous retires the others", async () => {
    const first = cluster.replicas[0]?.address ?? "";
    const run = await as("alice", ["keys", "rotate", "--now", "--json"], first);
    assert.equal(run.exit, 0, run.stderr);
    const created = (run.json as { createdKid: string }).createdKid;
    // The answering replica publishes it at once; the others at their next refresh.
    const firstClient = createStepgateClient({
      target: first,
      caller: "payments",
      tls: { ...(leaf.payments as CertificateFiles), caFile: fleetCa },
      revocationFeed: { enabled: false },
    });
    try {
      const jwks = JSON.parse((await firstClient.stepUp.getJwks({})).jwksJson) as { keys: { kid: string }[] };
      assert.ok(
        jwks.keys.some((k) => k.kid === created),
        JSON.stringify(jwks),
      );
    } finally {
      firstClient.close();
    }
    const retired = await alice("keys", "rotate", "--now", "--retire-previous");
    assert.equal(retired.exit, 0, retired.stderr);
    assert.match(retired.stdout, new RegExp(`retired signing key ${created}`));
  });

  it("reseal: the job runs on one replica and reports done", async () => {
    const run = await alice("reseal", "--json");
    assert.equal(run.exit, 0, run.stderr);
    assert.equal((run.json as { done: boolean }).done, true);
    const denied = await as("auditor", ["reseal"]);
    assert.equal(denied.exit, 4);
  });

  it("status with a replica killed: its row says unreachable, and the exit code is 3", async () => {
    const killed = cluster.replicas[1];
    await killed?.stop("SIGKILL");
    const run = await alice("status");
    assert.equal(run.exit, 3, run.stdout);
    assert.match(run.stdout, /replica-1 +SERVING/);
    assert.match(run.stdout, new RegExp(`${killed?.address} +- +UNREACHABLE`));
  });
});
