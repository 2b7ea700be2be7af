import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { AuditOutbox, OutboxEntry } from "../store/audit-outbox.ts";
import type { AuditEvent, AuditStore } from "../store/audit-store.ts";
import { retryDelayMs, sortEntries } from "./audit-drainer.ts";
import { type AuditLog, type AuditLogOptions, createAuditLog } from "./audit-log.ts";

type Stored = AuditEvent | "unreadable";

/**
 * A Redis stream with one consumer group, in memory: entries stay until acknowledged, a read
 * delivers each new entry to one consumer, pending entries carry their owner and delivery time.
 * `fail` makes the named methods reject until it is cleared.
 */
function memoryOutbox() {
  const entries = new Map<number, Stored>();
  const pending = new Map<number, { consumer: string; at: number }>();
  const fail = new Set<keyof AuditOutbox>();
  let seq = 0;
  let delivered = 0;
  let closed = false;
  let wakeReaders: (() => void)[] = [];
  const check = (method: keyof AuditOutbox) => {
    if (fail.has(method)) throw new Error(`${method} failed`);
  };
  const entryOf = (n: number): OutboxEntry => {
    const event = entries.get(n);
    return event === undefined
      ? { id: `${n}-0`, event: "deleted" }
      : ({ id: `${n}-0`, event } as OutboxEntry);
  };
  const deliver = (consumer: string, count: number) => {
    const fresh = [...entries.keys()].filter((n) => n > delivered).slice(0, count);
    for (const n of fresh) pending.set(n, { consumer, at: Date.now() });
    delivered = Math.max(delivered, ...fresh);
    return fresh.map(entryOf);
  };
  const outbox: AuditOutbox = {
    maxLength: 1000,
    async append(event) {
      check("append");
      entries.set(++seq, event);
      for (const wake of wakeReaders) wake();
      wakeReaders = [];
    },
    async readPending(consumer, count) {
      check("readPending");
      const mine = [...pending].filter(([, p]) => p.consumer === consumer).slice(0, count);
      for (const [n] of mine) pending.set(n, { consumer, at: Date.now() });
      return mine.map(([n]) => entryOf(n));
    },
    async readNew(consumer, count, blockMs) {
      check("readNew");
      if (closed && blockMs > 0) throw new Error("closed");
      const now = deliver(consumer, count);
      if (now.length > 0 || blockMs <= 0) return now;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, blockMs);
        wakeReaders.push(() => {
          clearTimeout(timer);
          if (closed) reject(new Error("closed"));
          else resolve();
        });
      });
      return deliver(consumer, count);
    },
    async claimStale(consumer, minIdleMs, count) {
      check("claimStale");
      const stale = [...pending].filter(([, p]) => Date.now() - p.at >= minIdleMs).slice(0, count);
      for (const [n] of stale) pending.set(n, { consumer, at: Date.now() });
      return { cursor: "0-0", entries: stale.map(([n]) => entryOf(n)) };
    },
    async acknowledge(ids) {
      check("acknowledge");
      for (const id of ids) {
        const n = Number(id.split("-")[0]);
        pending.delete(n);
        entries.delete(n);
      }
    },
    length: async () => entries.size,
    // The fake's ids are sequence numbers, not times: no age to tell.
    backlog: async () => ({ entries: entries.size, oldestAt: undefined }),
    forgetIdleConsumers: async () => 0,
    async close() {
      closed = true;
      for (const wake of wakeReaders) wake();
      wakeReaders = [];
    },
  };
  return {
    outbox,
    fail,
    entries,
    pending,
    /** Puts an entry into the stream as is, bypassing `append`. */
    put(value: Stored): number {
      entries.set(++seq, value);
      return seq;
    },
    /** Delivers what is new to `consumer` (a replica that then dies holding it). */
    take: (consumer: string) => deliver(consumer, 1000),
  };
}

/** PostgreSQL's audit_events as far as the outbox cares: an insert stores each id once. */
function memoryStore() {
  const rows = new Map<string, AuditEvent>();
  let failing = false;
  let inserts = 0;
  const store: AuditStore = {
    async append(events) {
      if (failing)
        throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
      inserts++;
      for (const e of events) if (!rows.has(e.id)) rows.set(e.id, e);
    },
  };
  return {
    store,
    rows,
    inserts: () => inserts,
    fail(on: boolean) {
      failing = on;
    },
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function setup(overrides: Partial<AuditLogOptions> = {}) {
  const box = memoryOutbox();
  const db = memoryStore();
  const errors: unknown[] = [];
  const log: AuditLog = createAuditLog({
    store: db.store,
    outbox: box.outbox,
    replica: "r1",
    onError: (error) => errors.push(error),
    blockMs: 20,
    claimAfterMs: 100,
    retryBaseMs: 5,
    retryMaxMs: 20,
    ...overrides,
  });
  return { box, db, errors, log };
}

const event = (n: number) => ({ type: "grant.issued", subject: `s${n}`, caller: "payments", details: { n } });

describe("audit log over the outbox", () => {
  it("resolves once the outbox holds the event; the drainer stores it and only then acknowledges it", async () => {
    const { box, db, errors, log } = setup();
    try {
      await log.record(event(1));
      await until(() => db.rows.size === 1, "the event in the store");
      await until(() => box.entries.size === 0, "the entry acknowledged");
      const [stored] = db.rows.values();
      assert.ok(stored);
      assert.match(stored.id, /^[A-Za-z0-9_-]{22}$/, "16 random bytes, base64url");
      assert.equal(stored.replica, "r1");
      assert.equal(stored.type, "grant.issued");
      assert.ok(stored.at instanceof Date);
      assert.deepEqual(errors, []);
    } finally {
      await log.close();
    }
  });

  it("gives every event its own id", async () => {
    const { db, log } = setup();
    try {
      await Promise.all(Array.from({ length: 50 }, (_, n) => log.record(event(n))));
      await log.flush();
      assert.equal(db.rows.size, 50);
    } finally {
      await log.close();
    }
  });

  it("lets events gather for lingerMs after a small batch: a steady trickle is stored in few inserts", async () => {
    const { db, log } = setup({ lingerMs: 200 });
    try {
      await log.record(event(0));
      await until(() => db.inserts() === 1, "the first event stored");
      // 20 events over about 100 ms, all inside the pause that follows the first insert.
      for (let n = 1; n <= 20; n++) {
        await log.record(event(n));
        await sleep(5);
      }
      await until(() => db.rows.size === 21, "every event stored", 2000);
      assert.equal(db.inserts(), 2, "one insert for the first event, one for the 20 that gathered");
    } finally {
      await log.close();
    }
  });

  it("close ends the pause after a batch at once", async () => {
    const { db, log } = setup({ lingerMs: 60_000 });
    await log.record(event(1));
    await until(() => db.rows.size === 1, "the event stored");
    const started = Date.now();
    await log.close();
    assert.ok(Date.now() - started < 1000, "close did not wait for the pause");
  });

  it("inserts into the store when the append fails, and rejects when the store fails too", async () => {
    const { box, db, errors, log } = setup();
    try {
      box.fail.add("append");
      await log.record(event(1));
      assert.equal(db.rows.size, 1, "stored directly");
      assert.equal(box.entries.size, 0);
      assert.match(String(errors[0]), /append failed \(append failed\); inserting into PostgreSQL/);
      db.fail(true);
      const refused = await log.record(event(2)).then(
        () => undefined,
        (error: unknown) => error,
      );
      assert.ok(refused instanceof Error);
      assert.match(refused.message, /not durable: the Redis outbox and PostgreSQL refused it/);
      assert.equal(
        (refused.cause as { code?: string }).code,
        "ECONNREFUSED",
        "the store's error as the cause",
      );
    } finally {
      await log.close();
    }
  });

  it("keeps events in the outbox while the store fails, retries them, and stores each once", async () => {
    const { box, db, errors, log } = setup();
    try {
      db.fail(true);
      for (let n = 0; n < 20; n++) await log.record(event(n));
      await until(() => errors.length >= 3, "failures reported and retried");
      assert.equal(db.rows.size, 0);
      assert.equal(box.entries.size, 20, "nothing acknowledged while the store fails");
      db.fail(false);
      await until(() => db.rows.size === 20, "all events stored");
      await until(() => box.entries.size === 0 && box.pending.size === 0, "all acknowledged");
      assert.ok(errors.every((e) => /ECONNREFUSED/.test(String(e))));
    } finally {
      await log.close();
    }
  });

  it("stores an event once when its acknowledgement failed and it is delivered again", async () => {
    const { box, db, log } = setup();
    try {
      box.fail.add("acknowledge");
      await log.record(event(1));
      await until(() => db.inserts() >= 2, "the batch inserted twice");
      box.fail.delete("acknowledge");
      await until(() => box.entries.size === 0, "acknowledged");
      assert.equal(db.rows.size, 1);
    } finally {
      await log.close();
    }
  });

  it("takes over what a dead replica held after claimAfterMs, not before", async () => {
    const { box, db, log } = setup({ claimAfterMs: 300 });
    try {
      // Another replica's drainer took these and died before storing them.
      for (let n = 0; n < 5; n++) box.put({ ...event(n), id: `dead-${n}`, at: new Date(), replica: "r0" });
      box.take("r0");
      await sleep(100);
      assert.equal(db.rows.size, 0, "not taken over while it may still be working");
      await until(() => db.rows.size === 5, "the dead replica's events stored");
      await until(() => box.entries.size === 0, "acknowledged");
    } finally {
      await log.close();
    }
  });

  it("flush stores what is pending, unread, and held too long by others", async () => {
    const { box, db, log } = setup({ blockMs: 60_000, claimAfterMs: 0 });
    try {
      box.put({ ...event(0), id: "held-by-r0", at: new Date(), replica: "r0" });
      box.take("r0");
      await log.record(event(1));
      await log.record(event(2));
      await log.flush();
      assert.ok(db.rows.has("held-by-r0"));
      assert.equal(db.rows.size, 3);
      assert.equal(box.entries.size, 0);
    } finally {
      await log.close();
    }
  });

  it("reports and drops unreadable entries, and acknowledges deleted ones", async () => {
    const { box, db, errors, log } = setup();
    try {
      // Taken by this replica, then trimmed away before it was stored.
      const trimmed = box.put({ ...event(0), id: "trimmed", at: new Date(), replica: "r1" });
      box.take("r1");
      box.entries.delete(trimmed);
      box.put("unreadable");
      await log.record(event(1));
      await until(() => db.rows.size === 1 && box.entries.size === 0, "drained");
      await until(() => box.pending.size === 0, "the trimmed entry acknowledged");
      assert.deepEqual(errors.map(String), ["Error: audit outbox: 1 unreadable entries dropped (2-0)"]);
    } finally {
      await log.close();
    }
  });

  it("close ends a blocked read at once and stops reading", async () => {
    const { box, log } = setup({ blockMs: 60_000 });
    await sleep(20);
    const started = Date.now();
    await log.close();
    assert.ok(Date.now() - started < 500, `closed in ${Date.now() - started} ms`);
    await assert.rejects(box.outbox.readNew("r1", 1, 10), /closed/);
  });

  it("close waits for an insert in flight only up to its bound", async () => {
    const box = memoryOutbox();
    let release = () => {};
    const hanging: AuditStore = { append: () => new Promise((resolve) => (release = resolve)) };
    const log = createAuditLog({
      store: hanging,
      outbox: box.outbox,
      replica: "r1",
      onError: () => {},
      blockMs: 20,
      stopTimeoutMs: 100,
    });
    await log.record(event(1));
    await sleep(50);
    const started = Date.now();
    await log.close();
    assert.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`);
    release();
  });
});

describe("audit log without an outbox", () => {
  it("inserts each event into the store before record resolves, and rejects with its error", async () => {
    const db = memoryStore();
    const errors: unknown[] = [];
    const log = createAuditLog({ store: db.store, replica: "r1", onError: (e) => errors.push(e) });
    await log.record(event(1));
    assert.equal(db.rows.size, 1);
    db.fail(true);
    await assert.rejects(log.record(event(2)), /audit event not durable: PostgreSQL refused it/);
    await log.flush();
    await log.close();
    assert.deepEqual(errors, []);
  });
});

describe("outbox drain helpers", () => {
  it("retry pauses double from the base up to the cap, jittered between half and all", () => {
    assert.equal(
      retryDelayMs(1, 100, 5000, () => 0),
      50,
    );
    assert.equal(
      retryDelayMs(1, 100, 5000, () => 0.999999),
      99.99995,
    );
    assert.equal(
      retryDelayMs(4, 100, 5000, () => 0),
      400,
    );
    assert.equal(
      retryDelayMs(30, 100, 5000, () => 0),
      2500,
    );
    for (let f = 1; f < 60; f++) assert.ok(retryDelayMs(f, 100, 5000) <= 5000);
  });

  it("sorts entries into events to store, each id once, and unreadable ids", () => {
    const e = { id: "a", type: "t", replica: "r", at: new Date(0) };
    const sorted = sortEntries([
      { id: "1-0", event: e },
      { id: "2-0", event: { ...e } },
      { id: "3-0", event: "deleted" },
      { id: "4-0", event: "unreadable" },
    ]);
    assert.deepEqual(sorted, { events: [e], unreadable: ["4-0"] });
  });
});
