import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { type Cluster, startCluster } from "../support/cluster.ts";
import { driveLoad, ReplicaTally, report, seedUsers } from "../support/load.ts";
import { resolutionCount, setFleet } from "../support/mutable-resolver.ts";

const maxConnectionAgeMs = 2000;

describe("a replica added under load", () => {
  let cluster: Cluster;
  let client: StepgateClient;
  before(async () => {
    cluster = await startCluster({
      size: 3,
      env: {
        STEPGATE_MAX_CONNECTION_AGE_MS: String(maxConnectionAgeMs),
        STEPGATE_MAX_CONNECTION_AGE_GRACE_MS: "1000",
      },
    });
    setFleet(
      "stepgate",
      cluster.replicas.map((r) => r.address),
    );
    client = createStepgateClient({ target: "fleet:///stepgate", caller: "payments" });
  });
  after(async () => {
    client.close();
    await cluster.close();
  });

  it("receives traffic within the maximum connection age, with no flow lost", async () => {
    const users = await seedUsers(client, 320);
    const tally = new ReplicaTally();
    let addedAt = 0;
    let firstCallAfterMs: number | undefined;
    const resolutionsBefore = resolutionCount();
    const result = await driveLoad(
      client,
      users,
      40,
      async () => {
        await sleep(1000);
        const added = await cluster.add();
        // Like a DNS record appearing: the channel learns of it only when it re-resolves.
        setFleet(
          "stepgate",
          cluster.replicas.map((r) => r.address),
        );
        addedAt = performance.now();
        while (performance.now() - addedAt < 3 * maxConnectionAgeMs) {
          if ((tally.counts.get(added.id) ?? 0) > 0) {
            firstCallAfterMs = Math.round(performance.now() - addedAt);
            break;
          }
          await sleep(20);
        }
      },
      tally,
    );
    report("replica added under load", result);
    process.stdout.write(
      `# added replica's first call after ${firstCallAfterMs} ms (max connection age ${maxConnectionAgeMs} ms); ` +
        `calls by replica ${JSON.stringify(Object.fromEntries(tally.counts))}; re-resolutions ${resolutionCount() - resolutionsBefore}\n`,
    );
    assert.deepEqual(result.errors, {});
    assert.ok(firstCallAfterMs !== undefined, "the added replica got no call");
    // Connection age is jittered by up to 10% and the grace lets old calls finish.
    assert.ok(firstCallAfterMs <= maxConnectionAgeMs * 1.1 + 500, `first call after ${firstCallAfterMs} ms`);
    assert.ok((tally.counts.get("replica-4") ?? 0) >= 20, "the added replica takes a share of the load");
  });
});
