import { context, ROOT_CONTEXT } from "@opentelemetry/api";
import type { Database } from "../store/database.ts";
import { sqlFor } from "../store/sql.ts";

/** A security-relevant event; `details` must never hold a secret or a code. */
export interface AuditRecord {
  type: string;
  subject?: string;
  caller?: string;
  details?: Record<string, unknown>;
}

export interface AuditLog {
  /** Queues an event; it is written within `flushIntervalMs`, in order, with the time it happened. */
  record(record: AuditRecord): void;
  /** Writes everything queued now. */
  flush(): Promise<void>;
  /** Flushes and stops the timer (at shutdown). */
  close(): Promise<void>;
}

export interface AuditLogOptions {
  replica: string;
  onError: (error: unknown) => void;
  /** How long an event may wait to be batched with others. Default 20 ms. */
  flushIntervalMs?: number;
  /** Events kept while PostgreSQL is failing; past this the oldest are dropped and reported. Default 100,000. */
  maxQueued?: number;
}

interface Queued extends AuditRecord {
  at: Date;
}

const batchSize = 500;

/**
 * Appends audit events to PostgreSQL in batches, off the request path: one multi-row insert per
 * interval instead of a round trip and a commit per call. A failed write keeps the events queued
 * for the next attempt and is reported, never thrown into a flow.
 */
export function createAuditLog(db: Database, options: AuditLogOptions): AuditLog {
  const sql = sqlFor(db);
  const interval = options.flushIntervalMs ?? 20;
  const maxQueued = options.maxQueued ?? 100_000;
  let queue: Queued[] = [];
  let timer: NodeJS.Timeout | undefined;
  let writing: Promise<void> = Promise.resolve();

  const write = async () => {
    while (queue.length > 0) {
      const batch = queue.slice(0, batchSize);
      await sql(
        `insert into audit_events (at, type, subject, caller, replica, details)
         select at, type, subject, caller, ?, details
         from unnest(?::timestamptz[], ?::text[], ?::text[], ?::text[], ?::jsonb[]) as e(at, type, subject, caller, details)`,
        [
          options.replica,
          batch.map((e) => e.at),
          batch.map((e) => e.type),
          batch.map((e) => e.subject ?? null),
          batch.map((e) => e.caller ?? null),
          batch.map((e) => JSON.stringify(e.details ?? {})),
        ],
      );
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
