import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { type OwnRedis, startOwnRedis } from "./support/own-redis.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const probeScript = join(import.meta.dirname, "../services/stepgate/src/tools/health-probe.ts");

describe("health follows the stores", () => {
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
    await redis.stop();
  });

  const status = async (service = "") => {
    const health = createClient(Health, createGrpcJsTransport({ channel, defaultTimeoutMs: 2000 }));
    return (await health.check({ service })).status;
  };
  const waitFor = async (want: HealthCheckResponse_ServingStatus) => {
    for (let i = 0; i < 100; i++) {
      if ((await status()) === want) return;
      await sleep(50);
    }
    assert.fail(`health never became status ${want}`);
  };

  const probe = () =>
    new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [probeScript, h.target], { stdio: "ignore" });
      child.once("exit", resolve);
    });

  it("serves while PostgreSQL and Redis answer, and stops serving while Redis is down", async () => {
    assert.equal(await status(), HealthCheckResponse_ServingStatus.SERVING);
    assert.equal(await probe(), 0, "the container health probe passes");
    assert.equal(await status("stepgate.v1.StepUpService"), HealthCheckResponse_ServingStatus.SERVING);
    await redis.stop("SIGKILL");
    await waitFor(HealthCheckResponse_ServingStatus.NOT_SERVING);
    assert.equal(await status("stepgate.v1.FactorService"), HealthCheckResponse_ServingStatus.NOT_SERVING);
    assert.equal(await probe(), 1, "the container health probe fails");
    await redis.start();
    await waitFor(HealthCheckResponse_ServingStatus.SERVING);
  });
});
