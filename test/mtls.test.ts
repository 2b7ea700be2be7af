// Mutual TLS through real replica processes: the caller is named by its client certificate (a
// SPIFFE ID or a DNS name the policy maps), never by what it says; certificates and the CA bundle
// are reloaded from their files without a restart; an independent gRPC stack (buf curl, Go) gets
// the same answers.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { connect as tlsConnect } from "node:tls";
import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { subjectTokenHeader } from "@stepgate/api";
import { createStepgateClient, type StepgateClient, type StepgateClientOptions } from "@stepgate/client";
import {
  type CertificateFiles,
  createTestPki,
  startTestIdentityProvider,
  type TestIdentityProvider,
  type TestPki,
} from "@stepgate/testkit";
import { freePort } from "@stepgate/testkit/free-port";
import { type ReplicaProcess, startReplicaProcess } from "@stepgate/testkit/replica-process";
import {
  everyGeneralNameExtension,
  hiddenNameExtensions,
  hiddenSpiffeId,
} from "@stepgate/testkit/san-certificates";
import { createTestDatabase, type TestDatabase } from "@stepgate/testkit/test-database";
import { totpCode } from "@stepgate/testkit/totp-code";
import { expectFailure } from "./support/errors.ts";
import { newSession, newSubject } from "./support/flows.ts";
import { newKeyRing, testPolicy, writePolicy } from "./support/stepgate.ts";
import { http2Preface, plaintextAttempt, refusedHandshakes, tlsAttempt } from "./support/tls-handshakes.ts";

const paymentsId = "spiffe://example.org/ns/prod/sa/payments";

describe("mutual TLS", () => {
  let pki: TestPki;
  let idp: TestIdentityProvider;
  let db: TestDatabase;
  let replica: ReplicaProcess;
  // The files the replica reads: copies the test rewrites to rotate them.
  const served = { cert: "", key: "", ca: "" };
  let fleetCa: string;
  let prometheusPort: number;
  const leaf: Record<string, CertificateFiles> = {};
  const clients: StepgateClient[] = [];

  before(async () => {
    pki = createTestPki();
    const fleet = pki.authority("fleet");
    fleetCa = fleet.certFile;
    leaf.replica = fleet.issue("replica", ["IP:127.0.0.1", "DNS:localhost"]);
    leaf.payments = fleet.issue("payments", [`URI:${paymentsId}`]);
    leaf.orders = fleet.issue("orders", ["DNS:Orders.Internal"]);
    leaf.stranger = fleet.issue("stranger", ["URI:spiffe://example.org/ns/prod/sa/stranger"]);
    for (const [kind, extensions] of Object.entries(hiddenNameExtensions("orders.internal"))) {
      leaf[`hidden ${kind}`] = fleet.issue(`hidden-${kind.replaceAll(" ", "-")}`, [], { extensions });
    }
    leaf.everyKind = fleet.issue("every-kind", [], { extensions: everyGeneralNameExtension(paymentsId) });
    leaf.twoCallers = fleet.issue("two-callers", [`URI:${paymentsId}`, "DNS:orders.internal"]);
    leaf.paymentsTwice = fleet.issue("payments-twice", [`URI:${paymentsId}`, "DNS:Payments.Internal"]);
    leaf.expired = fleet.issue("expired", [`URI:${paymentsId}`], { days: -1 });
    leaf.serverOnly = fleet.issue("server-only", [`URI:${paymentsId}`], { extendedKeyUsage: "serverAuth" });
    leaf.rogue = pki.authority("rogue").issue("rogue-payments", [`URI:${paymentsId}`]);
    const second = pki.authority("second");
    leaf.second = second.issue("second-payments", [`URI:${paymentsId}`]);
    Object.assign(served, {
      cert: join(pki.dir, "served.pem"),
      key: join(pki.dir, "served.key"),
      ca: join(pki.dir, "clients-ca.pem"),
    });
    copyFileSync(leaf.replica.certFile, served.cert);
    copyFileSync(leaf.replica.keyFile, served.key);
    copyFileSync(fleet.certFile, served.ca);
    idp = await startTestIdentityProvider();
    db = await createTestDatabase();
    const policy = `${testPolicy}
callers:
  payments: { peers: ["${paymentsId}", payments.internal], actions: ["*"], factors: manage }
  enrol: { peers: ["${hiddenSpiffeId}"], actions: ["*"], factors: manage }
  orders: { peers: [orders.internal], actions: [account.change_email], factors: read }
subject_proof:
  issuers: [{ issuer: "${idp.issuer}", jwks_uri: "${idp.jwksUri}", audiences: [${idp.audience}] }]
`;
    prometheusPort = await freePort();
    replica = await startReplicaProcess("replica-1", await freePort(), {
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_POLICY_FILE: writePolicy(policy),
      STEPGATE_ENCRYPTION_KEYS: newKeyRing(),
      STEPGATE_TLS_CERT_FILE: served.cert,
      STEPGATE_TLS_KEY_FILE: served.key,
      STEPGATE_TLS_CLIENT_CA_FILE: served.ca,
      STEPGATE_TLS_RELOAD_MS: "200",
      // Longer than the test: every refusal after a reason's first is counted, not logged.
      STEPGATE_TLS_REFUSAL_LOG_INTERVAL_MS: "3600000",
      OTEL_METRICS_EXPORTER: "prometheus",
      OTEL_EXPORTER_PROMETHEUS_HOST: "127.0.0.1",
      OTEL_EXPORTER_PROMETHEUS_PORT: String(prometheusPort),
      STEPGATE_DRAIN_DELAY_MS: "0",
      DATABASE_URL: db.url,
      DATABASE_POOL_SIZE: "4",
    });
  });
  after(async () => {
    for (const c of clients) c.close();
    await replica?.stop("SIGKILL");
    await db?.drop();
    await idp?.close();
    pki?.dispose();
  });

  const target = () => `127.0.0.1:${replica.port}`;
  const clientWith = (options: Partial<StepgateClientOptions> & { caller: string }) => {
    const c = createStepgateClient({ target: target(), replicaRetryRounds: 0, ...options });
    clients.push(c);
    return c;
  };
  const tlsClient = (name: string, caller: string) =>
    clientWith({ caller, tls: { ...(leaf[name] as CertificateFiles), caFile: fleetCa } });
  const listOf = (c: StepgateClient) => c.factors.listFactors({ subject: newSubject() }, { timeoutMs: 3000 });

  it("names the caller by its certificate: grants are bound to it, scopes follow it", async () => {
    const payments = tlsClient("payments", "payments");
    const subject = newSubject();
    const sessionId = newSession();
    const token = await idp.token({ sub: subject, auth_time: Math.floor(Date.now() / 1000) });
    const enrolled = await payments.factors.enrollTotp(
      { subject, label: "Phone", accountName: "a@example.com" },
      { headers: { [subjectTokenHeader]: token } },
    );
    const now = () => Math.floor(Date.now() / 1000);
    await payments.factors.confirmTotp(
      { subject, factorId: enrolled.factorId, code: totpCode(enrolled.secret, now()) },
      { headers: { [subjectTokenHeader]: token } },
    );
    const stepUp = await payments.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" });
    assert.equal(stepUp.outcome.case, "challenge");
    const verified = await payments.stepUp.verify({
      challengeId: stepUp.outcome.value.challengeId,
      subject,
      sessionId,
      action: "payments.transfer",
      // The confirming code's step is used up: the next step's code, which the window accepts.
      proof: { kind: { case: "totpCode", value: totpCode(enrolled.secret, now() + 30) } },
      idempotencyKey: randomBytes(8).toString("hex"),
    });
    const claims = await payments.verifyGrant(verified.grant?.token ?? "", { action: "payments.transfer" });
    assert.equal(claims.aud, "payments");
    // orders (a DNS SAN, matched without case) may read factors but not change them or step up for payments.
    const orders = tlsClient("orders", "orders");
    await listOf(orders);
    await expectFailure(
      orders.stepUp.stepUp({ subject, sessionId, action: "payments.transfer" }),
      Code.PermissionDenied,
      "CALLER_NOT_ALLOWED",
    );
    await expectFailure(
      orders.stepUp.checkGrant({ token: verified.grant?.token ?? "", action: "payments.transfer" }),
      Code.PermissionDenied,
      "CALLER_NOT_ALLOWED",
    );
  });

  it("refuses a header naming another caller, and a certificate the policy does not map", async () => {
    // orders' certificate, claiming to be payments in the header.
    await expectFailure(listOf(tlsClient("orders", "payments")), Code.Unauthenticated, "CALLER_UNKNOWN");
    await expectFailure(listOf(tlsClient("stranger", "stranger")), Code.Unauthenticated, "CALLER_UNKNOWN");
  });

  it("names no caller from a URI or DNS name written inside an email, DirName or othername entry", async () => {
    const hidden = Object.keys(leaf).filter((name) => name.startsWith("hidden "));
    assert.equal(hidden.length, 5);
    for (const name of hidden) {
      const f = await expectFailure(listOf(tlsClient(name, "enrol")), Code.Unauthenticated, "CALLER_UNKNOWN");
      assert.match(f.message, /names no calling service/, name);
    }
  });

  it("takes only the typed URI and DNS names of a certificate holding every GeneralName kind", async () => {
    await listOf(tlsClient("everyKind", "payments"));
    await expectFailure(listOf(tlsClient("everyKind", "enrol")), Code.Unauthenticated, "CALLER_UNKNOWN");
  });

  it("refuses a certificate whose names map to two callers; two names of one caller name it", async () => {
    const f = await expectFailure(
      listOf(tlsClient("twoCallers", "payments")),
      Code.Unauthenticated,
      "CALLER_UNKNOWN",
    );
    assert.match(f.message, /more than one calling service/);
    await listOf(tlsClient("paymentsTwice", "payments"));
  });

  it("counts refused handshakes by reason, and logs each reason at most once per interval", async () => {
    const port = replica.port;
    const attempt = (name: string) => tlsAttempt(port, fleetCa, leaf[name]);
    // Two of each: the second of a reason is counted but not logged.
    const attempts: [string, () => { destroy(): void }][] = [
      ["no_certificate", () => tlsAttempt(port, fleetCa)],
      ["untrusted", () => attempt("rogue")],
      ["expired", () => attempt("expired")],
      ["wrong_purpose", () => attempt("serverOnly")],
      ["plaintext", () => plaintextAttempt(port, http2Preface)],
      ["plaintext", () => plaintextAttempt(port, "GET / HTTP/1.1\r\nHost: stepgate\r\n\r\n")],
      ["disconnected", () => plaintextAttempt(port)],
    ];
    const expected: Record<string, number> = {};
    for (const [reason] of attempts) expected[reason] = (expected[reason] ?? 0) + 2;
    const before = await refusedHandshakes(prometheusPort);
    assert.equal(before.other, 0, "every reason's series exists from the start");
    const sockets = attempts.flatMap(([, open]) => [open(), open()]);
    const moved = async () => {
      const now = await refusedHandshakes(prometheusPort);
      return Object.keys(now).reduce((sum, r) => sum + (now[r] ?? 0) - (before[r] ?? 0), 0);
    };
    await waitFor(async () => (await moved()) >= sockets.length);
    for (const socket of sockets) socket.destroy();
    const after = await refusedHandshakes(prometheusPort);
    for (const reason of Object.keys(after)) {
      assert.equal((after[reason] ?? 0) - (before[reason] ?? 0), expected[reason] ?? 0, reason);
    }
    const logged = replica.lines
      .filter((l) => l.includes('"TLS handshake refused"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    for (const reason of Object.keys(expected)) {
      assert.equal(logged.filter((l) => l.reason === reason).length, 1, `one line for ${reason}`);
    }
    // The reason and Node's code: nothing from the certificate.
    for (const line of logged) assert.ok(!JSON.stringify(line).includes("payments"), JSON.stringify(line));
    assert.equal(logged.find((l) => l.reason === "expired")?.code, "CERT_HAS_EXPIRED");
  });

  it("refuses connections without a client certificate, with one from another CA, or in plaintext", async () => {
    const fleetCaPem = readFileSync(fleetCa);
    const rogue = leaf.rogue as CertificateFiles;
    const attempts: [string, grpc.ChannelCredentials][] = [
      ["no client certificate", grpc.credentials.createSsl(fleetCaPem)],
      [
        "another CA's certificate",
        grpc.credentials.createSsl(fleetCaPem, readFileSync(rogue.keyFile), readFileSync(rogue.certFile)),
      ],
      ["plaintext", grpc.credentials.createInsecure()],
    ];
    for (const [what, credentials] of attempts) {
      const c = clientWith({ caller: "payments", credentials });
      const f = await expectFailure(listOf(c), Code.Unavailable);
      assert.ok(f.reason === undefined, `${what}: refused before any handler ran`);
      // A refused channel keeps reconnecting until closed.
      c.close();
    }
  });

  it("takes rotated certificates and a changed CA bundle from their files, without a restart", async () => {
    const serialBefore = await servedSerial();
    const renewed = pki.authority("fleet-renewed");
    // A replica certificate from a new CA the clients are told to trust too.
    const next = renewed.issue("replica-renewed", ["IP:127.0.0.1"]);
    const bothCas = join(pki.dir, "both-ca.pem");
    writeFileSync(bothCas, Buffer.concat([readFileSync(fleetCa), readFileSync(renewed.certFile)]));
    // Half-written first (a new key beside the old certificate): refused, the last good pair stays.
    copyFileSync(next.keyFile, served.key);
    await waitFor(() => replica.lines.some((l) => l.includes("TLS certificates not reloaded")));
    await listOf(
      clientWith({ caller: "payments", tls: { ...(leaf.payments as CertificateFiles), caFile: fleetCa } }),
    );
    copyFileSync(next.certFile, served.cert);
    await waitFor(async () => (await servedSerial()) !== serialBefore);
    await listOf(
      clientWith({ caller: "payments", tls: { ...(leaf.payments as CertificateFiles), caFile: bothCas } }),
    );

    const second = () =>
      clientWith({ caller: "payments", tls: { ...(leaf.second as CertificateFiles), caFile: bothCas } });
    await expectFailure(listOf(second()), Code.Unavailable);
    appendFileSync(served.ca, readFileSync(join(pki.dir, "second-ca.pem")));
    await waitFor(async () => {
      try {
        await listOf(second());
        return true;
      } catch {
        return false;
      }
    });
    assert.ok(replica.lines.some((l) => l.includes("TLS certificates reloaded")));
  });

  it("serves an independent gRPC stack (buf curl) over mutual TLS, and refuses it without a certificate", async () => {
    const buf = fileURLToPath(new URL("../node_modules/.bin/buf", import.meta.url));
    const payments = leaf.payments as CertificateFiles;
    const both = join(pki.dir, "both-ca.pem");
    const run = (args: string[]) =>
      new Promise<{ code: number; stdout: string }>((resolve) =>
        execFile(
          buf,
          ["curl", "--protocol", "grpc", "--timeout", "20s", "--cacert", both, ...args],
          { timeout: 30_000, env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" } },
          (error, stdout) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout }),
        ),
      );
    const url = `https://127.0.0.1:${replica.port}/stepgate.v1.StepUpService/GetJwks`;
    const ok = await run(["--cert", payments.certFile, "--key", payments.keyFile, "-d", "{}", url]);
    assert.equal(ok.code, 0);
    assert.ok((JSON.parse(ok.stdout) as { keys: unknown[] }).keys.length > 0);
    const refused = await run(["-d", "{}", url]);
    assert.notEqual(refused.code, 0);
  });

  /** The serial number of the certificate a new TLS connection to the replica is shown. */
  async function servedSerial(): Promise<string> {
    const payments = leaf.payments as CertificateFiles;
    return new Promise((resolve, reject) => {
      const socket = tlsConnect(
        {
          host: "127.0.0.1",
          port: replica.port,
          ALPNProtocols: ["h2"],
          cert: readFileSync(payments.certFile),
          key: readFileSync(payments.keyFile),
          rejectUnauthorized: false,
        },
        () => {
          const serial = socket.getPeerCertificate().serialNumber;
          socket.destroy();
          resolve(serial);
        },
      );
      socket.once("error", reject);
    });
  }
});

/** Polls `check` every 100 ms for at most 10 s. */
async function waitFor(check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await check()) return;
    await sleep(100);
  }
  assert.fail("the condition did not come true within 10 s");
}
