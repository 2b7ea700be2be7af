// PostgreSQL down, Redis up: StepUp issues challenges from the encrypted factor cache, Verify claims
// TOTP steps in Redis and queues them for PostgreSQL, and no code is ever accepted twice: not during
// the outage, not after it, and not after Redis loses its data once PostgreSQL has caught up.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { type OwnPostgres, startOwnPostgres } from "@stepgate/testkit/own-postgres";
import { expectFailure } from "./support/errors.ts";
import { challenge, enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const { SERVING, NOT_SERVING } = HealthCheckResponse_ServingStatus;

describe("PostgreSQL down, Redis up", () => {
  let postgres: OwnPostgres;
  let h: Harness;
  let channel: grpc.Channel;
  before(async () => {
    postgres = await startOwnPostgres();
    h = await startStepgate({ databaseServerUrl: postgres.url, healthIntervalMs: 100 });
    channel = new grpc.Channel(h.target, grpc.credentials.createInsecure(), {});
  });
  after(async () => {
    channel.close();
    await postgres.start().catch(() => {});
    await h.close();
    await postgres.destroy();
  });

  const status = async (service: string) => {
    const health = createClient(Health, createGrpcJsTransport({ channel, defaultTimeoutMs: 2000 }));
    return (await health.check({ service })).status;
  };
  /** Waits (at most 10 s) for a log line written after `from` that holds every one of `parts`. */
  const logged = async (from: number, ...parts: string[]) => {
    for (let i = 0; i < 200; i++) {
      if (h.logs.slice(from).some((l) => parts.every((p) => l.includes(p)))) return;
      await sleep(50);
    }
    assert.fail(`no log line with ${parts.join(", ")}`);
  };
  const verify = (subject: string, sessionId: string, challengeId: string, code: string, key = newKey()) =>
    h.client.stepUp.verify({
      challengeId,
      subject,
      sessionId,
      action: "payments.transfer",
      proof: { kind: { case: "totpCode", value: code } },
      idempotencyKey: key,
    });

  it("steps up and verifies, and no code is accepted twice, across the outage and a loss of Redis", async () => {
    const subject = newSubject();
    const { factorId, secret } = await enrolTotp(h, subject);
    const from = h.logs.length;
    await postgres.stop("SIGQUIT");
    await logged(from, '"dependency down"', '"postgresql"');
    assert.equal(await status("stepgate.v1.StepUpService"), SERVING);
    assert.equal(await status("stepgate.v1.FactorService"), NOT_SERVING);

    // A challenge from the cached factors, answered with a code claimed in Redis.
    const sessionId = newSession();
    const c = await challenge(h.client, subject, sessionId, "payments.transfer");
    const step = Math.floor(h.clock.now() / 30_000);
    const code = h.code(secret);
    const key = newKey();
    const answered = await verify(subject, sessionId, c.challengeId, code, key);
    assert.ok(answered.grant?.token);
    const retried = await verify(subject, sessionId, c.challengeId, code, key);
    assert.equal(retried.grant?.token, answered.grant?.token, "a retry gets the same grant");
    const replaySession = newSession();
    const replay = await challenge(h.client, subject, replaySession, "payments.transfer");
    await expectFailure(
      verify(subject, replaySession, replay.challengeId, code),
      Code.PermissionDenied,
      "CODE_REPLAYED",
    );
    // What needs PostgreSQL to decide is refused, and says why.
    await expectFailure(
      h.client.factors.createRecoveryCodes({ subject }),
      Code.Unavailable,
      "DEPENDENCY_UNAVAILABLE",
    );
    // A subject the cache has never seen cannot be challenged.
    await expectFailure(
      h.client.stepUp.stepUp({ subject: newSubject(), sessionId: newSession(), action: "payments.transfer" }),
      Code.Unavailable,
    );

    const back = h.logs.length;
    await postgres.start();
    await logged(back, '"dependency up"', '"postgresql"');
    await h.flushAudit();
    const [factor] = await h.db.query<{ last_step: string }>("select last_step from factors where id = $1", [
      factorId,
    ]);
    assert.equal(Number(factor?.last_step), step, "PostgreSQL learnt the claim");
    const events = await h.db.query<{ type: string }>(
      "select type from audit_events where subject = $1 and type in ('verify.succeeded', 'totp.step_claimed')",
      [subject],
    );
    assert.deepEqual(events.map((e) => e.type).sort(), ["totp.step_claimed", "verify.succeeded"]);

    // Redis loses its data: PostgreSQL, caught up, still refuses the code.
    await h.redis?.clean();
    const lost = newSession();
    const afterLoss = await challenge(h.client, subject, lost, "payments.transfer");
    await expectFailure(
      verify(subject, lost, afterLoss.challengeId, code),
      Code.PermissionDenied,
      "CODE_REPLAYED",
    );
  });
});
