import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import fc from "fast-check";
import { admissionRank } from "../domain/priority.ts";
import { type Admission, createAdmission, type Shed, type Ticket } from "./admission.ts";
import type { ConcurrencyLimit } from "./gradient-limit.ts";

/** A limit that never moves, so a test decides how many calls run. */
const fixed = (limit: number): ConcurrencyLimit => ({ limit, update: () => {}, backOff: () => {} });

const critical = admissionRank("critical", false);
const criticalVerify = admissionRank("critical", true);
const normal = admissionRank("normal", false);
const low = admissionRank("low", false);

/** Calls through one admission, recording the order they start in and why any was shed. */
function harness(admission: Admission) {
  const started: string[] = [];
  const shed: string[] = [];
  const tickets = new Map<string, Ticket>();
  const ended = new Set<string>();
  const call = (name: string, rank: number, caller = "a", deadline?: number) => {
    void Promise.resolve(
      admission.admit({ rank, caller, ...(deadline === undefined ? {} : { deadline }) }),
    ).then((decision) => {
      if (decision.admitted) {
        started.push(name);
        tickets.set(name, decision);
      } else {
        shed.push(`${name}:${decision.reason}`);
      }
    });
  };
  /** Ends running calls in the order they started until none is left. */
  const finishAll = async () => {
    await sleep(0);
    for (let i = 0; i < 1000; i++) {
      const name = started.find((n) => !ended.has(n));
      if (name === undefined) return;
      ended.add(name);
      tickets.get(name)?.done();
      await sleep(0);
    }
  };
  return { started, shed, call, finishAll };
}

describe("admission control", () => {
  it("makes room in a full line for another caller's call by shedding the flooding caller's newest", async () => {
    const h = harness(createAdmission({ limit: fixed(1), maxQueued: 3, maxWaitMs: 5000 }));
    h.call("running", normal, "flood");
    await sleep(0);
    for (const name of ["f1", "f2", "f3"]) h.call(name, normal, "flood");
    h.call("other", normal, "light");
    // A second call of a caller that waits already finds no one with a longer line to take from.
    h.call("f4", normal, "flood");
    await h.finishAll();
    assert.deepEqual(h.shed.sort(), ["f3:queue_full", "f4:queue_full"]);
    assert.deepEqual(h.started, ["running", "f1", "other", "f2"]);
  });

  it("keeps one turn for an idle caller while low calls are shed on arrival (saturated loop)", async () => {
    const h = harness(
      createAdmission({ limit: fixed(1), maxQueued: 10, maxWaitMs: 5000, saturated: () => true }),
    );
    h.call("running", low, "flood");
    await sleep(0);
    h.call("f1", low, "flood");
    h.call("other", low, "light");
    await h.finishAll();
    assert.deepEqual(h.shed, ["f1:overloaded"]);
    assert.deepEqual(h.started, ["running", "other"]);
  });

  it("runs up to the limit, then starts waiting calls in rank order: critical Verify first", async () => {
    const h = harness(createAdmission({ limit: fixed(1), maxQueued: 10, maxWaitMs: 5000 }));
    h.call("first", normal);
    await sleep(0);
    for (const [name, rank] of [
      ["low", low],
      ["normal", normal],
      ["critical", critical],
      ["verify", criticalVerify],
    ] as const) {
      h.call(name, rank);
    }
    await h.finishAll();
    assert.deepEqual(h.started, ["first", "verify", "critical", "normal", "low"]);
    assert.deepEqual(h.shed, []);
  });

  it("reports the waiting calls by priority", async () => {
    const admission = createAdmission({ limit: fixed(1), maxQueued: 10, maxWaitMs: 5000 });
    const h = harness(admission);
    for (const [name, rank] of [
      ["first", normal],
      ["low", low],
      ["normal", normal],
      ["verify", criticalVerify],
    ] as const) {
      h.call(name, rank);
    }
    await sleep(0);
    assert.deepEqual(admission.snapshot(), {
      limit: 1,
      inFlight: 1,
      bestEffortSlots: 1,
      queued: { critical: 1, high: 0, normal: 1, low: 1 },
    });
    await h.finishAll();
  });

  it("takes waiting calls of one rank from each caller in turn", async () => {
    const h = harness(createAdmission({ limit: fixed(1), maxQueued: 20, maxWaitMs: 5000 }));
    h.call("first", normal);
    for (let i = 0; i < 5; i++) h.call(`flood-${i}`, normal, "flood");
    h.call("other", normal, "other");
    await h.finishAll();
    assert.deepEqual(h.started, ["first", "flood-0", "other", "flood-1", "flood-2", "flood-3", "flood-4"]);
  });

  it("sheds the newest lowest-ranked waiting call for a higher one when the queue is full", async () => {
    const h = harness(createAdmission({ limit: fixed(1), maxQueued: 2, maxWaitMs: 5000 }));
    h.call("first", normal);
    h.call("low-1", low);
    h.call("low-2", low);
    h.call("critical", critical);
    h.call("low-3", low);
    await h.finishAll();
    assert.deepEqual(h.shed.sort(), ["low-2:queue_full", "low-3:queue_full"]);
    assert.deepEqual(h.started, ["first", "critical", "low-1"]);
  });

  it("sheds a call whose deadline cannot be met, at once or while it waits", async () => {
    let t = 1000;
    const admission = createAdmission({ limit: fixed(1), maxQueued: 10, maxWaitMs: 5000, now: () => t });
    const h = harness(admission);
    h.call("too-late", normal, "a", t + 1);
    h.call("first", normal);
    h.call("waits", normal, "a", t + 40);
    await sleep(60);
    t += 60;
    await h.finishAll();
    assert.deepEqual(h.shed, ["too-late:deadline", "waits:deadline"]);
    assert.deepEqual(h.started, ["first"]);
  });

  it("never lets low priority wait while the event loop is saturated; higher priorities still wait", async () => {
    const admission = createAdmission({
      limit: fixed(1),
      maxQueued: 10,
      maxWaitMs: 5000,
      saturated: () => true,
    });
    const h = harness(admission);
    h.call("first", low);
    h.call("low", low);
    h.call("normal", normal);
    await h.finishAll();
    assert.deepEqual(h.shed, ["low:overloaded"]);
    assert.deepEqual(h.started, ["first", "normal"]);
  });

  it("never runs more than the limit, and settles every call, whatever arrives", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 7 }), fc.constantFrom("a", "b", "c")), { maxLength: 40 }),
        async (limit, maxQueued, arrivals) => {
          const admission = createAdmission({ limit: fixed(limit), maxQueued, maxWaitMs: 5000 });
          let running = 0;
          let peak = 0;
          const decisions = await Promise.all(
            arrivals.map(async ([rank, caller]) => {
              const decision = await admission.admit({ rank, caller });
              if (!decision.admitted) return decision;
              running += 1;
              peak = Math.max(peak, running);
              await sleep(0);
              running -= 1;
              decision.done();
              return decision;
            }),
          );
          assert.ok(peak <= limit, `peak ${peak} over ${limit}`);
          const shed = decisions.filter((d): d is Shed => !d.admitted);
          assert.ok(
            shed.length <= Math.max(0, arrivals.length - limit),
            "only calls past the limit are shed",
          );
          assert.deepEqual(admission.snapshot().queued, { critical: 0, high: 0, normal: 0, low: 0 });
          assert.equal(admission.snapshot().inFlight, 0);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("takes a cancelled call out of the queue without starting it", async () => {
    const admission = createAdmission({ limit: fixed(1), maxQueued: 10, maxWaitMs: 5000 });
    const first = await admission.admit({ rank: normal, caller: "a" });
    assert.ok(first.admitted);
    const cancel = new AbortController();
    const waiting = admission.admit({ rank: normal, caller: "a", signal: cancel.signal });
    cancel.abort(new Error("client went away"));
    await assert.rejects(Promise.resolve(waiting), /client went away/);
    assert.equal(admission.snapshot().queued.normal, 0);
    first.done();
    assert.equal(admission.snapshot().inFlight, 0);
  });

  it("holds normal and low calls to their slots: a burst waits, a flood is shed on arrival", async () => {
    const h = harness(
      createAdmission({ limit: fixed(4), maxQueued: 100, maxWaitMs: 5000, bestEffortSlots: () => 1 }),
    );
    h.call("critical", critical);
    for (let i = 1; i <= 15; i++) h.call(`normal-${i}`, normal);
    await sleep(0);
    assert.deepEqual(h.started, ["critical", "normal-1"], "one best-effort slot, the critical call past it");
    // Room to wait for 2 x 1 + 8 of them; the rest are shed at once.
    assert.deepEqual(h.shed, [
      "normal-12:overloaded",
      "normal-13:overloaded",
      "normal-14:overloaded",
      "normal-15:overloaded",
    ]);
    await h.finishAll();
    assert.equal(h.started.length, 12);
  });

  it("keeps best-effort calls to their slots only while critical or high calls are about", async () => {
    let t = 0;
    const h = harness(
      createAdmission({
        limit: fixed(4),
        maxQueued: 10,
        maxWaitMs: 5000,
        now: () => t,
        bestEffortSlots: () => 1,
      }),
    );
    h.call("low-1", low);
    h.call("low-2", low);
    await sleep(0);
    assert.deepEqual(h.started, ["low-1", "low-2"], "no critical call yet: every slot is theirs");
    h.call("critical", critical);
    h.call("low-3", low);
    await sleep(0);
    assert.deepEqual(h.started, ["low-1", "low-2", "critical"], "low-3 waits: two best-effort calls run");
    t += 1001;
    h.call("low-4", low);
    await sleep(0);
    assert.deepEqual(
      h.started,
      ["low-1", "low-2", "critical", "low-3"],
      "a second later the waiting one starts: every slot is theirs again",
    );
    await h.finishAll();
    assert.deepEqual(h.shed, []);
    assert.equal(h.started.at(-1), "low-4");
  });
});
