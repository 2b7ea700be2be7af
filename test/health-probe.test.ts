// The container probes (services/stepgate/src/tools/health-probe.ts) against a real replica process:
// readiness passes only while the replica is SERVING; liveness (--answering) passes for any answer,
// NOT_SERVING included, so a draining replica (or one whose stores are down) is not restarted.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type Cluster, startCluster } from "./support/cluster.ts";

const probeScript = join(import.meta.dirname, "../services/stepgate/src/tools/health-probe.ts");

/** Runs the probe with `args`; resolves with its exit code. */
const probe = (...args: string[]) =>
  new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, [probeScript, ...args], { stdio: "ignore" });
    child.once("exit", resolve);
  });

describe("container health probes", () => {
  let cluster: Cluster;
  before(async () => {
    // A long drain: the replica reports NOT_SERVING for 4 s after SIGTERM before it stops.
    cluster = await startCluster({ size: 1, env: { STEPGATE_DRAIN_DELAY_MS: "4000" } });
  });
  after(async () => {
    await cluster?.close();
  });

  it("readiness follows SERVING; liveness passes while draining and fails once nothing answers", async () => {
    const replica = cluster.replicas[0];
    assert.ok(replica);
    assert.equal(await probe(replica.address), 0, "readiness while serving");
    assert.equal(await probe("--answering", replica.address), 0, "liveness while serving");
    const stopped = replica.stop("SIGTERM", 10_000);
    // Health turns NOT_SERVING at once on SIGTERM; the drain delay keeps the server answering.
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await probe(replica.address), 1, "readiness fails while draining");
    assert.equal(await probe("--answering", replica.address), 0, "liveness passes while draining");
    await stopped;
    assert.equal(await probe("--answering", replica.address), 1, "liveness fails once nothing answers");
  });
});
