import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { AuditEvent, AuditStore } from "../store/audit-store.ts";

/** A security-relevant event as a use case reports it; `details` must never hold a secret or a code. */
export type AuditRecord = Omit<AuditEvent, "at">;

export interface AuditLog {
  /** Queues an event; it is written within `flushIntervalMs`, in order, with the time it happened. */
  record(record: AuditRecord): void;
  /** Writes everything queued now. */
  flush(): Promise<void>;
  /** Flushes and stops the timer (at shutdown). */
  close(): Promise<void>;
}

export interface AuditLogOptions {
  store: AuditStore;
  /** Names the replica on every event. */
  replica: string;
  /** Told of every failed write (the events stay queued) and of dropped events; never throws into a flow. */
  onError: (error: unknown) => void;
  /** How long an event may wait to be batched with others. Default 20 ms. */
  flushIntervalMs?: number;
  /** Events kept while PostgreSQL is failing; past this the oldest are dropped and reported. Default 100,000. */
  maxQueued?: number;
}

const batchSize = 500;

/**
 * Appends audit events to PostgreSQL in batches, off the request path: one multi-row insert per
 * interval instead of a round trip and a commit per call. A failed write keeps the events queued
 * for the next attempt and is reported, never thrown into a flow.
 */
export function createAuditLog(options: AuditLogOptions): AuditLog {
  const interval = options.flushIntervalMs ?? 20;
  const maxQueued = options.maxQueued ?? 100_000;
  let queue: AuditEvent[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const write = async () => {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      await options.store.append(batch, options.replica);
      queue = queue.slice(batch.length);
    }
  };
  const flush = () => {
    timer = undefined;
    writing = writing.then(write).catch((error: unknown) => {
      options.onError(error);
      schedule();
    });
    return writing;
  };
  const schedule = () => {
    // Outside any call's trace: a batch belongs to no single request.
    timer ??= context.with(ROOT_CONTEXT, () => setTimeout(() => void flush(), interval));
    timer.unref();
  };
  return {
    record(record) {
      queue.push({ ...record, at: new Date() });
      if (queue.length > maxQueued) {
        queue.splice(0, queue.length - maxQueued);
        options.onError(new Error("audit queue full: oldest events dropped"));
      }
      schedule();
    },
    flush,
    async close() {
      clearTimeout(timer);
      await flush();
    },
  };
}
