// Health and hot state follow the stores: with Redis gone the hot state moves to PostgreSQL and the
// replica keeps serving; when Redis comes back empty, what was closed stays closed.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { type OwnRedis, startOwnRedis } from "@stepgate/testkit/own-redis";
import { assertClosed, closeState } from "./support/closed-state.ts";
import { enrolTotp, newSession, newSubject, stepUpWithTotp } from "./support/flows.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const probeScript = join(import.meta.dirname, "../services/stepgate/src/tools/health-probe.ts");
const { SERVING } = HealthCheckResponse_ServingStatus;

describe("health and hot state follow the stores", () => {
  let redis: OwnRedis;
  let h: Harness;
  let channel: grpc.Channel;
  before(async () => {
    redis = await startOwnRedis();
    h = await startStepgate({ redisUrl: redis.url, healthIntervalMs: 100 });
    channel = new grpc.Channel(h.target, grpc.credentials.createInsecure(), {});
  });
  after(async () => {
    channel.close();
    await h.close();
    await redis.destroy();
  });

  const status = async (service = "") => {
    const health = createClient(Health, createGrpcJsTransport({ channel, defaultTimeoutMs: 2000 }));
    return (await health.check({ service })).status;
  };
  const probe = () =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [probeScript, h.target], { stdio: "ignore" });
      child.once("exit", resolve);
    });
  /** Waits (at most 10 s) for the log line saying the hot state moved to `store`. */
  const movedTo = async (store: "redis" | "postgresql", from: number) => {
    for (let i = 0; i < 200; i++) {
      const moved = h.logs
        .slice(from)
        .some((l) => l.includes('"hot state moved"') && l.includes(`"${store}"`));
      if (moved) return;
      await sleep(50);
    }
    assert.fail(`the hot state never moved to ${store}`);
  };

  it("keeps serving on PostgreSQL while Redis is down, and never re-opens what was closed", async () => {
    assert.equal(await status(), SERVING);
    assert.equal(await probe(), 0, "the container health probe passes");
    // Every subject enrols first: enrolment moves the test clock, and a single-use grant lives 60 s.
    const [a, b, c, d, locked] = [newSubject(), newSubject(), newSubject(), newSubject(), newSubject()];
    const secrets = new Map<string, string>();
    for (const s of [a, b, c, d, locked]) secrets.set(s, (await enrolTotp(h, s)).secret);
    const flow = (s: string, action: string, sessionId = newSession()) =>
      stepUpWithTotp(h, s, sessionId, action, secrets.get(s) ?? "");
    // Closed before the outage: a spent single-use grant, an ended session's grant, a locked subject.
    const closed = await closeState(h.client, {
      spender: a,
      ender: b,
      locked,
      code: (s) => h.code(secrets.get(s) ?? ""),
    });

    const before = h.logs.length;
    await redis.stop("SIGKILL");
    await movedTo("postgresql", before);
    assert.equal(await status(), SERVING, "still serving: the hot state is in PostgreSQL");
    assert.equal(await status("stepgate.v1.StepUpService"), SERVING);
    assert.equal(await status("stepgate.v1.FactorService"), SERVING);
    assert.equal(await probe(), 0);
    assert.ok(h.logs.slice(before).some((l) => l.includes('"dependency down"') && l.includes('"redis"')));
    await assertClosed(h.client, closed, "while Redis is down");
    const during = await flow(c, "payments.transfer");
    assert.ok(during.grant?.token, "a whole flow works on PostgreSQL alone");

    const back = h.logs.length;
    await redis.start();
    await movedTo("redis", back);
    await assertClosed(h.client, closed, "after Redis came back empty");
    const after = await flow(d, "payments.transfer");
    assert.ok(after.grant?.token, "and again on Redis");
  });
});
