// Configuration errors stop the real entry point with exit code 2 and a message that names the bad
// key (never its value); the policy file is validated path by path.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
} from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { ConfigError } from "@stepgate/server/config/config-error";
import { parsePolicy } from "@stepgate/server/policy/policy";
import { createTestDatabase } from "@stepgate/testkit/test-database";
import { testPolicy } from "./support/stepgate.ts";

const root = fileURLToPath(new URL("..", import.meta.url));
const main = join(root, "services/stepgate/src/main.ts");
const examplePolicy = readFileSync(join(root, "services/stepgate/policy/example.yaml"), "utf8");

/** A database no one listens on: a config that wrongly passes validation fails fast with exit 1. */
const unreachableDatabase = "postgresql://postgres@127.0.0.1:1/stepgate";

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node services/stepgate/src/main.ts` with exactly `env` (nothing inherited, so no STEPGATE_*
 * or DATABASE_URL from the test's own environment) and waits for it to exit by itself.
 */
function runMain(env: Record<string, string>, timeoutMs = 20_000): Promise<Exit> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [main],
      { cwd: root, env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 1 << 20 },
      (error, stdout, stderr) => {
        const e = error as (Error & { code?: unknown; signal?: NodeJS.Signals | null }) | null;
        resolve({
          code: e === null ? 0 : typeof e.code === "number" ? e.code : null,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        });
      },
    );
  });
}

describe("configuration errors at start (child process)", () => {
  let dir: string;
  let policyFile: string;
  const keyMaterial = randomBytes(32).toString("base64");
  /** A complete, valid environment; each case breaks one thing. */
  let env: () => Record<string, string>;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), "stepgate-config-test-"));
    policyFile = join(dir, "policy.yaml");
    writeFileSync(policyFile, examplePolicy);
    env = () => ({
      STEPGATE_HOST: "127.0.0.1",
      STEPGATE_PORT: "0",
      STEPGATE_POLICY_FILE: policyFile,
      STEPGATE_INSECURE_DEV: "1",
      STEPGATE_ENCRYPTION_KEYS: `k1:${keyMaterial}`,
      STEPGATE_LOG_LEVEL: "info",
      DATABASE_URL: unreachableDatabase,
    });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Expects exit code 2 with "invalid configuration" and every `names` on stderr. */
  async function expectConfigError(environment: Record<string, string>, ...names: string[]) {
    const exit = await runMain(environment);
    assert.equal(exit.signal, null, `the child was killed, it did not exit by itself: ${exit.stderr}`);
    assert.equal(exit.code, 2, `exit code (stderr: ${exit.stderr})`);
    assert.match(exit.stderr, /^stepgate: invalid configuration\n/);
    for (const name of names) assert.ok(exit.stderr.includes(name), `stderr names ${name}: ${exit.stderr}`);
    assert.equal(exit.stdout, "", "nothing started, nothing logged");
    return exit;
  }

  const policyWith = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it("serves neither plaintext nor half-configured TLS unless told to, naming what is missing", async () => {
    const { STEPGATE_INSECURE_DEV: _, ...tlsless } = env();
    await expectConfigError(
      tlsless,
      "STEPGATE_TLS_CERT_FILE",
      "STEPGATE_TLS_KEY_FILE",
      "STEPGATE_INSECURE_DEV=1",
    );
    await expectConfigError({ ...tlsless, STEPGATE_TLS_CERT_FILE: "/x.pem" }, "STEPGATE_TLS_CLIENT_CA_FILE");
    await expectConfigError({ ...env(), STEPGATE_TLS_CERT_FILE: "/x.pem" }, "cannot be combined");
    const missing = {
      STEPGATE_TLS_CERT_FILE: join(dir, "no.pem"),
      STEPGATE_TLS_KEY_FILE: join(dir, "no.key"),
    };
    const tls = { ...tlsless, ...missing, STEPGATE_TLS_CLIENT_CA_FILE: join(dir, "no-ca.pem") };
    await expectConfigError(tls, "STEPGATE_TLS_*: cannot read the certificate file");
  });

  it("a missing STEPGATE_POLICY_FILE exits 2 naming it", async () => {
    const { STEPGATE_POLICY_FILE: _, ...rest } = env();
    await expectConfigError(rest, "STEPGATE_POLICY_FILE");
  });

  it("a rule whose condition does not compile exits 2 naming the action and the rule", async () => {
    const broken = examplePolicy.replace("!facts.payee_seen", "!facts.payee_sen");
    assert.notEqual(broken, examplePolicy);
    await expectConfigError(
      { ...env(), STEPGATE_POLICY_FILE: policyWith("broken-rule.yaml", broken) },
      "actions.payments.transfer.rules[1] (new_payee): when unknown field facts.payee_sen",
    );
    const notBool = examplePolicy.replace("transaction.present && !facts.payee_seen", "transaction.amount");
    await expectConfigError(
      { ...env(), STEPGATE_POLICY_FILE: policyWith("number-rule.yaml", notBool) },
      "(new_payee): when is a double, not a bool",
    );
  });

  it("a missing DATABASE_URL exits 2 naming it", async () => {
    const { DATABASE_URL: _, ...rest } = env();
    await expectConfigError(rest, "DATABASE_URL");
  });

  it("an empty value counts as missing", async () => {
    await expectConfigError({ ...env(), STEPGATE_ENCRYPTION_KEYS: "" }, "STEPGATE_ENCRYPTION_KEYS");
  });

  it("every missing key is named at once", async () => {
    const exit = await expectConfigError(
      {},
      "STEPGATE_POLICY_FILE",
      "STEPGATE_ENCRYPTION_KEYS",
      "DATABASE_URL",
    );
    assert.ok(!exit.stderr.includes("STEPGATE_PORT"), "keys with defaults are not reported");
  });

  it("an invalid STEPGATE_PORT exits 2 naming STEPGATE_PORT", async () => {
    await Promise.all(
      ["70000", "-1", "http", "80.5"].map((port) =>
        expectConfigError({ ...env(), STEPGATE_PORT: port }, "STEPGATE_PORT"),
      ),
    );
  });

  it("a DATABASE_URL with another scheme is named without echoing its password", async () => {
    const exit = await expectConfigError(
      { ...env(), DATABASE_URL: "mysql://stepgate:hunter2-db-password@db.internal/stepgate" },
      "DATABASE_URL",
    );
    assert.ok(!exit.stderr.includes("hunter2-db-password"));
  });

  it("REDIS_URL with REDIS_SENTINELS, or a sentinel address that does not parse, exits 2 naming it", async () => {
    await expectConfigError(
      { ...env(), REDIS_URL: "redis://127.0.0.1:6379", REDIS_SENTINELS: "127.0.0.1:26379" },
      "REDIS_SENTINELS",
    );
    const exit = await expectConfigError(
      { ...env(), REDIS_SENTINELS: "127.0.0.1:26379,sentinel-b:99999", REDIS_PASSWORD: "hunter2-redis-pw" },
      "REDIS_SENTINELS: entry 2",
    );
    assert.ok(!exit.stderr.includes("hunter2-redis-pw") && !exit.stderr.includes("sentinel-b"));
  });

  it("an encryption key of 5 bytes names key id k1, not the key material", async () => {
    const short = randomBytes(5).toString("base64");
    const exit = await expectConfigError({ ...env(), STEPGATE_ENCRYPTION_KEYS: `k1:${short}` }, "k1");
    assert.match(exit.stderr, /STEPGATE_ENCRYPTION_KEYS: key "k1" must be 32 bytes/);
    assert.ok(!exit.stderr.includes(short), "the key material is not printed");
    // Nor the other, valid key of the ring.
    const ring = await expectConfigError(
      { ...env(), STEPGATE_ENCRYPTION_KEYS: `k0:${keyMaterial},k1:${short}` },
      "k1",
    );
    assert.ok(!ring.stderr.includes(short) && !ring.stderr.includes(keyMaterial));
  });

  it("an encryption key without an id, and an active key id not in the ring", async () => {
    const exit = await expectConfigError(
      { ...env(), STEPGATE_ENCRYPTION_KEYS: keyMaterial },
      "STEPGATE_ENCRYPTION_KEYS",
    );
    assert.ok(!exit.stderr.includes(keyMaterial));
    await expectConfigError(
      { ...env(), STEPGATE_ENCRYPTION_KEY_ID: "k9" },
      "STEPGATE_ENCRYPTION_KEY_ID",
      "k9",
    );
  });

  it("a policy file that cannot be read names STEPGATE_POLICY_FILE", async () => {
    await expectConfigError(
      { ...env(), STEPGATE_POLICY_FILE: join(dir, "missing.yaml") },
      "STEPGATE_POLICY_FILE",
    );
  });

  it("a policy with an unknown level in an action names actions.<name>.acr", async () => {
    const file = policyWith(
      "unknown-level.yaml",
      examplePolicy.replace("account.change_email: { acr: aal2", "account.change_email: { acr: aal9"),
    );
    const exit = await expectConfigError(
      { ...env(), STEPGATE_POLICY_FILE: file },
      "actions.account.change_email.acr",
    );
    assert.match(exit.stderr, /unknown level "aal9"/);
  });

  it("a policy missing stepgate.remove_factor names it", async () => {
    const file = policyWith(
      "no-remove.yaml",
      examplePolicy
        .split("\n")
        .filter((line) => !line.includes("stepgate.remove_factor"))
        .join("\n"),
    );
    await expectConfigError({ ...env(), STEPGATE_POLICY_FILE: file }, "actions.stepgate.remove_factor");
  });

  it("an unknown top-level key in the policy is rejected, naming it", async () => {
    const file = policyWith("unknown-key.yaml", `${examplePolicy}\nmax_grants_per_day: 10\n`);
    await expectConfigError({ ...env(), STEPGATE_POLICY_FILE: file }, "max_grants_per_day");
  });

  it("a valid configuration starts, serves health, and stops with exit 0 on SIGTERM", async () => {
    const db = await createTestDatabase();
    const child = spawn(process.execPath, [main], {
      cwd: root,
      env: { ...env(), DATABASE_URL: db.url },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once("exit", (code, signal) => resolve({ code, signal })),
    );
    // The child must stop by itself after SIGTERM; this only ends a hung one.
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += String(chunk);
    });
    child.stderr.on("data", (chunk) => {
      stderr += String(chunk);
    });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        child.stdout.on("data", () => {
          const match = /"port":(\d+)[^\n]*"msg":"stepgate serving"/.exec(stdout);
          if (match) resolve(Number(match[1]));
        });
        void exited.then((e) => reject(new Error(`exited before serving (${e.code}): ${stderr}${stdout}`)));
      });
      const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
      try {
        const status = await new Promise<HealthCheckResponse_ServingStatus>((resolve, reject) =>
          client.makeUnaryRequest(
            "/grpc.health.v1.Health/Check",
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.from(toBinary(HealthCheckRequestSchema, create(HealthCheckRequestSchema))),
            { deadline: Date.now() + 5000 },
            (error, value) =>
              error || !value ? reject(error) : resolve(fromBinary(HealthCheckResponseSchema, value).status),
          ),
        );
        assert.equal(status, HealthCheckResponse_ServingStatus.SERVING);
      } finally {
        client.close();
      }
      child.kill("SIGTERM");
      assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
      assert.match(stdout, /"msg":"draining"/);
      assert.match(stdout, /"msg":"stopped"/);
      assert.ok(!`${stdout}${stderr}`.includes(keyMaterial), "the key never appears in the output");
    } finally {
      clearTimeout(killer);
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGKILL");
        await exited;
      }
      await db.drop();
    }
  });
});

describe("policy validation (parsePolicy)", () => {
  const errorOf = (text: string) => {
    try {
      parsePolicy(text, "policy.yaml");
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.message;
    }
    assert.fail("expected the policy to be rejected");
  };

  it("accepts the example policy and the test policy", () => {
    const example = parsePolicy(examplePolicy);
    assert.deepEqual(example.levels, ["aal1", "aal2", "aal3"]);
    assert.equal(example.actions.get("secrets.read")?.maxAge, 0);
    assert.equal(example.actions.get("secrets.read")?.grantTtl, 60);
    const tests = parsePolicy(testPolicy);
    assert.deepEqual(tests.actions.get("payments.transfer")?.methods, ["totp"]);
    // No `methods:` on an action: every method the policy defines.
    assert.deepEqual(tests.actions.get("account.change_email")?.methods, ["totp", "recovery_code"]);
  });

  it("reads priorities (default normal) and rate limits, and rejects bad ones by path", () => {
    const example = parsePolicy(examplePolicy);
    assert.equal(example.actions.get("payments.transfer")?.priority, "critical");
    assert.equal(example.actions.get("stepgate.remove_factor")?.priority, "normal");
    assert.deepEqual(example.rateLimits.subject, { calls: 120, perSeconds: 60 });
    assert.deepEqual(example.rateLimits.callers.get("reports"), { calls: 200, perSeconds: 1 });
    assert.deepEqual(parsePolicy(testPolicy).rateLimits, { callers: new Map() });
    assert.match(
      errorOf(testPolicy.replace("admin.root: { acr: aal3", "admin.root: { priority: urgent, acr: aal3")),
      /actions\.admin\.root\.priority/,
    );
    assert.match(
      errorOf(`${testPolicy}rate_limits: { subject: { calls: 0, per: 60 } }\n`),
      /rate_limits\.subject\.calls/,
    );
    assert.match(
      errorOf(`${testPolicy}rate_limits: { callers: { "Bad Name": { calls: 1, per: 1 } } }\n`),
      /rate_limits\.callers/,
    );
    assert.match(errorOf(`${testPolicy}rate_limits: { subject: { calls: 1, per: 1, burst: 2 } }\n`), /burst/);
  });

  it("reads caller scopes, and names an unknown action in one", () => {
    const scoped = parsePolicy(
      `${testPolicy}callers: { payments: { actions: [payments.transfer], factors: read } }\n`,
    );
    assert.deepEqual(scoped.callerScopes?.get("payments"), {
      actions: new Set(["payments.transfer"]),
      factors: "read",
      subjectProof: "optional",
    });
    assert.equal(parsePolicy(testPolicy).callerScopes, undefined);
    assert.equal(
      errorOf(`${testPolicy}callers: { payments: { actions: [payments.refund] } }\n`),
      'policy.yaml: callers.payments.actions: unknown action "payments.refund"',
    );
    assert.match(
      errorOf(`${testPolicy}callers: { payments: { factors: write } }\n`),
      /callers\.payments\.factors/,
    );
  });

  it("maps certificate identities to callers, once each, and reads the subject proof settings", () => {
    const mapped = parsePolicy(
      `${testPolicy}callers:\n  payments: { peers: ["spiffe://example.org/ns/prod/sa/payments", payments.internal], subject_proof: required }\n` +
        "subject_proof: { issuers: [{ issuer: https://login.example.org, jwks_uri: https://login.example.org/jwks, audiences: [stepgate] }] }\n",
    );
    assert.equal(mapped.callerPeers.get("spiffe://example.org/ns/prod/sa/payments"), "payments");
    assert.equal(mapped.callerPeers.get("payments.internal"), "payments");
    assert.equal(mapped.callerScopes?.get("payments")?.subjectProof, "required");
    assert.deepEqual(mapped.subjectProof, {
      issuers: [
        {
          issuer: "https://login.example.org",
          jwksUri: "https://login.example.org/jwks",
          audiences: ["stepgate"],
        },
      ],
      firstFactorMaxAge: 600,
    });
    assert.equal(
      errorOf(`${testPolicy}callers: { a: { peers: [x.internal] }, b: { peers: [x.internal] } }\n`),
      "policy.yaml: callers.b.peers: x.internal already names a",
    );
    assert.match(errorOf(`${testPolicy}callers: { a: { peers: ["spiffe://"] } }\n`), /callers\.a\.peers/);
    assert.match(errorOf(`${testPolicy}callers: { a: { peers: ["Not A Name"] } }\n`), /callers\.a\.peers/);
    assert.match(
      errorOf(
        `${testPolicy}subject_proof: { issuers: [{ issuer: x, jwks_uri: "ftp://x/jwks", audiences: [a] }] }\n`,
      ),
      /subject_proof\.issuers/,
    );
  });

  it("an unknown level names its path, for an action and for a method", () => {
    assert.equal(
      errorOf(testPolicy.replace("admin.root: { acr: aal3", "admin.root: { acr: aal4")),
      'policy.yaml: actions.admin.root.acr: unknown level "aal4"',
    );
    assert.equal(
      errorOf(testPolicy.replace("totp: { acr: aal2", "totp: { acr: gold")),
      'policy.yaml: methods.totp.acr: unknown level "gold"',
    );
  });

  it("reads passkey demands per action, forcing UV and a device-bound key where only they reach the level", () => {
    const example = parsePolicy(examplePolicy);
    assert.deepEqual(example.actions.get("payments.transfer")?.passkey, {
      userVerification: true,
      deviceBound: false,
      aaguids: [],
    });
    assert.equal(example.actions.get("payments.high_value")?.bindTransaction, true);
    assert.equal(example.actions.get("payments.transfer")?.bindTransaction, false);
    assert.deepEqual(example.actions.get("payments.high_value")?.passkey, {
      userVerification: true,
      deviceBound: true,
      aaguids: [],
    });
    // aal3 without passkey settings: methods.passkey reaches aal3 only device-bound and user-verified.
    const forced = parsePolicy(
      examplePolicy.replace(
        "secrets.read: { acr: aal2, max_age: 0, grant_ttl: 60, priority: high }",
        "secrets.read: { acr: aal3, max_age: 0, grant_ttl: 60, priority: high }",
      ),
    );
    assert.deepEqual(forced.actions.get("secrets.read")?.passkey, {
      userVerification: true,
      deviceBound: true,
      aaguids: [],
    });
    assert.deepEqual(forced.actions.get("secrets.read")?.methods, ["totp", "recovery_code", "passkey"]);
    assert.equal(example.methods.passkey?.deviceBoundAcr, "aal3");
    assert.deepEqual(example.methods.passkey?.amr, []);
  });

  it("gives each caller its relying party, else the policy's, and derives stepgate.enroll_passkey", () => {
    const policy = parsePolicy(`${testPolicy}
webauthn: { rp_id: example.com, origins: ["https://example.com", "https://app.example.com:8443"] }
callers:
  payments: { actions: ["*"], webauthn: { rp_id: pay.example.com, rp_name: Pay, origins: ["https://pay.example.com"] } }
  accounts: { actions: ["*"] }
`);
    assert.deepEqual(policy.relyingParties.get("payments"), {
      id: "pay.example.com",
      name: "Pay",
      origins: ["https://pay.example.com"],
    });
    assert.equal(policy.relyingParties.get("accounts")?.id, "example.com");
    assert.equal(policy.relyingParties.get("accounts")?.name, "example.com");
    assert.equal(policy.defaultRelyingParty?.origins.length, 2);
    const enrol = policy.actions.get("stepgate.enroll_passkey");
    assert.equal(enrol?.acr, policy.actions.get("stepgate.enroll_totp")?.acr);
    assert.equal(enrol?.maxAge, policy.actions.get("stepgate.enroll_totp")?.maxAge);
  });

  it("refuses origins that are not exact, not https off localhost, or not on the RP id, naming each", () => {
    const message = errorOf(`${testPolicy}
webauthn:
  rp_id: example.com
  origins: ["https://example.com/login", "http://example.com", "https://example.org", "https://evil-example.com"]
`);
    assert.deepEqual(message.split("\n"), [
      'policy.yaml: webauthn.origins: "https://example.com/login" is not an origin (scheme://host[:port])',
      'policy.yaml: webauthn.origins: "http://example.com" must use https',
      'policy.yaml: webauthn.origins: "https://example.org" is not on the RP id example.com',
      'policy.yaml: webauthn.origins: "https://evil-example.com" is not on the RP id example.com',
    ]);
    assert.doesNotThrow(() =>
      parsePolicy(`${testPolicy}\nwebauthn: { rp_id: localhost, origins: ["http://localhost:8088"] }\n`),
    );
  });

  it("refuses an unknown device-bound level and an AAGUID that is not a lowercase UUID, by path", () => {
    assert.match(
      errorOf(
        testPolicy.replace("methods:\n", "methods:\n  passkey: { acr: aal2, device_bound_acr: aal7 }\n"),
      ),
      /methods\.passkey\.device_bound_acr: unknown level "aal7"/,
    );
    assert.match(
      errorOf(
        testPolicy.replace(
          "admin.root: { acr: aal3, max_age: 60 }",
          'admin.root: { acr: aal3, max_age: 60, passkey: { aaguids: ["ADCE0002-35BC-C60A-648B-0B25F1F05503"] } }',
        ),
      ),
      /actions\.admin\.root\.passkey\.aaguids\.0/,
    );
  });

  it("each missing management action is named", () => {
    const without = testPolicy
      .split("\n")
      .filter((line) => !line.includes("stepgate.enroll_totp") && !line.includes("stepgate.remove_factor"))
      .join("\n");
    assert.deepEqual(errorOf(without).split("\n"), [
      "policy.yaml: actions.stepgate.enroll_totp: required management action is missing",
      "policy.yaml: actions.stepgate.remove_factor: required management action is missing",
    ]);
  });

  it("unknown keys are rejected at every level, naming them", () => {
    assert.match(
      errorOf(`${testPolicy}\ncolour: blue\n`),
      /policy\.yaml: \(root\): Unrecognized key: "colour"/,
    );
    assert.match(
      errorOf(
        testPolicy.replace("admin.root: { acr: aal3, max_age: 60 }", "admin.root: { acr: aal3, maxage: 60 }"),
      ),
      /actions\.admin\.root: Unrecognized key: "maxage"/,
    );
    assert.match(
      errorOf(
        testPolicy.replace("totp: { acr: aal2, amr: [otp] }", "totp: { acr: aal2, amr: [otp], digits: 8 }"),
      ),
      /methods\.totp: Unrecognized key: "digits"/,
    );
    assert.match(
      errorOf(testPolicy.replace("methods:\n", "methods:\n  sms: { acr: aal1, amr: [sms] }\n")),
      /"sms"/,
    );
  });

  it("limits: NIST's 100 failures, challenge ttl and attempts, negative max_age", () => {
    assert.match(
      errorOf(testPolicy.replace("max_failures: 8", "max_failures: 101")),
      /lockout\.max_failures/,
    );
    assert.match(errorOf(testPolicy.replace("ttl: 60", "ttl: 5")), /challenge\.ttl/);
    assert.match(
      errorOf(testPolicy.replace("max_attempts: 5", "max_attempts: 0")),
      /challenge\.max_attempts/,
    );
    assert.match(
      errorOf(
        testPolicy.replace(
          "account.change_email: { acr: aal2, max_age: 600",
          "account.change_email: { acr: aal2, max_age: -1",
        ),
      ),
      /actions\.account\.change_email\.max_age/,
    );
  });

  it("bad action names, unknown methods, and documents that are not a mapping", () => {
    assert.match(errorOf(testPolicy.replace("admin.root:", "Admin Root:")), /actions\.Admin Root/);
    assert.match(
      errorOf(testPolicy.replace("methods: [totp] }", "methods: [sms] }")),
      /actions\.payments\.transfer\.methods/,
    );
    assert.match(errorOf(""), /policy\.yaml: \(root\)/);
    assert.match(errorOf("- a list"), /policy\.yaml: \(root\)/);
    assert.match(errorOf("levels: [aal1\n  bad: : yaml"), /policy\.yaml: not valid YAML/);
  });

  it("reports every problem, not only the first", () => {
    const text = testPolicy
      .replace("payments.transfer: { acr: aal2", "payments.transfer: { acr: aal9")
      .replace("  stepgate.remove_factor: { acr: aal2, max_age: 300 }\n", "");
    assert.deepEqual(errorOf(text).split("\n"), [
      'policy.yaml: actions.payments.transfer.acr: unknown level "aal9"',
      "policy.yaml: actions.stepgate.remove_factor: required management action is missing",
    ]);
  });

  const totpOnly = testPolicy.replace("  recovery_code: { acr: aal2, amr: [otp] }\n", "");
  it("a policy may define only some methods (TOTP only)", () => {
    const policy = parsePolicy(totpOnly);
    assert.deepEqual(policy.actions.get("account.change_email")?.methods, ["totp"]);
  });
  it("an action naming a method the policy does not define names actions.<name>.methods", () => {
    const text = totpOnly.replace(
      "account.change_email: { acr: aal2, max_age: 600 }",
      "account.change_email: { acr: aal2, max_age: 600, methods: [recovery_code] }",
    );
    assert.equal(
      errorOf(text),
      'policy.yaml: actions.account.change_email.methods: method "recovery_code" is not defined',
    );
  });
});
