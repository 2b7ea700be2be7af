import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { RevocationEvent } from "../domain/revocation.ts";
import { createPublishRevocations } from "./publish-revocation.ts";
import { factorEnded } from "./revocation-events.ts";

const event: RevocationEvent = factorEnded("f1", 1000, 60_000);
const down = () => new DependencyUnavailableError("postgresql", "STORE_UNAVAILABLE", 100);

describe("publishing revocations", () => {
  it("appends to the log while PostgreSQL answers, and defers nothing", async () => {
    const appended: RevocationEvent[] = [];
    const deferred: RevocationEvent[] = [];
    const publish = createPublishRevocations({
      log: { append: async (events) => void appended.push(...events) },
      audit: { deferRevocation: async (e) => Boolean(deferred.push(e)) },
    });
    await publish([event]);
    assert.deepEqual(appended, [event]);
    assert.deepEqual(deferred, []);
  });

  it("defers each event to the outbox while PostgreSQL is down", async () => {
    const deferred: RevocationEvent[] = [];
    const publish = createPublishRevocations({
      log: { append: async () => Promise.reject(down()) },
      audit: { deferRevocation: async (e) => Boolean(deferred.push(e)) },
    });
    await publish([event]);
    assert.deepEqual(deferred, [event]);
  });

  it("fails when neither takes it (no outbox), and passes other errors through", async () => {
    const noOutbox = createPublishRevocations({
      log: { append: async () => Promise.reject(down()) },
      audit: { deferRevocation: async () => false },
    });
    await assert.rejects(noOutbox([event]), DependencyUnavailableError);
    const broken = createPublishRevocations({
      log: { append: async () => Promise.reject(new TypeError("bug")) },
      audit: { deferRevocation: async () => assert.fail("a bug is not an outage") },
    });
    await assert.rejects(broken([event]), TypeError);
  });

  it("derives a retired key's event id from its kid, so replicas record it once", async () => {
    const { keyRetired } = await import("./revocation-events.ts");
    assert.equal(keyRetired("k1", 1, 2).id, keyRetired("k1", 5, 9).id);
    assert.notEqual(factorEnded("f1", 1, 2).id, factorEnded("f1", 1, 2).id);
  });
});
