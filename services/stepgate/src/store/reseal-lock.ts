import pg from "pg";

// Any fixed 64-bit number, distinct from the migration lock: one re-seal job at a time.
const resealLock = "84543917998453";

/** The re-seal job's lock, held on a connection of its own until released. */
export interface ResealLock {
  release(): Promise<void>;
}

/**
 * Takes PostgreSQL's advisory lock for the re-seal job without waiting: undefined when another
 * job (an operator's command or a replica's background job) holds it. A job that dies loses its
 * connection, and with it the lock.
 */
export async function tryResealLock(url: string): Promise<ResealLock | undefined> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const rows = await client.query<{ taken: boolean }>("select pg_try_advisory_lock($1) as taken", [
    resealLock,
  ]);
  if (!rows.rows[0]?.taken) {
    await client.end().catch(() => {});
    return undefined;
  }
  return {
    async release() {
      await client.query("select pg_advisory_unlock($1)", [resealLock]).catch(() => {});
      await client.end().catch(() => {});
    },
  };
}
