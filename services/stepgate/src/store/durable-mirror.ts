import { DependencyUnavailableError } from "../domain/dependency-unavailable.ts";
import type { HotStore } from "./hot/hot-store.ts";

/**
 * PostgreSQL's copy of the security state that must survive the loss of Redis (revocations, spent
 * grants, lockouts). Used only while Redis carries the hot state: when PostgreSQL carries it, the
 * hot store is durable already.
 */
export interface DurableMirror {
  /**
   * Runs `op` on PostgreSQL's hot store when mirroring applies. Returns `whenSkipped` when it does
   * not, or when PostgreSQL is unavailable (Redis then holds the state alone until the mirror can
   * be written again); other errors are thrown.
   */
  run<T>(op: (durable: HotStore) => Promise<T>, whenSkipped: T): Promise<T>;
}

/** A mirror of `hot` in `durable`; `durable` undefined means the hot store is durable itself. */
export function createDurableMirror(hot: HotStore, durable: HotStore | undefined): DurableMirror {
  return {
    async run(op, whenSkipped) {
      if (durable === undefined || hot.kind !== "redis") return whenSkipped;
      try {
        return await op(durable);
      } catch (error) {
        if (error instanceof DependencyUnavailableError) return whenSkipped;
        throw error;
      }
    },
  };
}

/** A mirror that never mirrors: for a hot store that is durable, or unit tests. */
export const noMirror: DurableMirror = { run: async (_op, whenSkipped) => whenSkipped };
