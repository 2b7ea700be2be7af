import { execFileSync } from "node:child_process";
import { onPath, postgresBinDir } from "./binaries.ts";
import { type OwnPostgres, startOwnPostgres } from "./own-postgres.ts";
import { type OwnRedis, startOwnRedis } from "./own-redis.ts";

/** What `startTestStores` started (none when both URLs were given), to stop after the run. */
export interface TestStores {
  /** One line each: where the run's PostgreSQL and Redis are. */
  readonly described: string[];
  stop(): Promise<void>;
}

/** Why the run cannot start its own stores, as one line naming what to install; undefined when it can. */
export function missingStoreBinaries(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const missing: string[] = [];
  if (!env.STEPGATE_TEST_DATABASE_URL && postgresBinDir(env) === undefined)
    missing.push(
      "PostgreSQL's initdb and postgres (Debian/Ubuntu: apt-get install postgresql; or set STEPGATE_PG_BIN)",
    );
  if (!env.STEPGATE_TEST_REDIS_URL && !onPath("redis-server", env.PATH))
    missing.push("redis-server (Debian/Ubuntu: apt-get install redis-server)");
  // test/ha/postgres-standby.test.ts puts HAProxy in front of a primary and its standby.
  if (!onPath("haproxy", env.PATH)) missing.push("haproxy (Debian/Ubuntu: apt-get install haproxy)");
  return missing.length === 0 ? undefined : `pnpm test needs ${missing.join(" and ")}`;
}

/**
 * The stores a test run uses: the PostgreSQL at STEPGATE_TEST_DATABASE_URL and the Redis at
 * STEPGATE_TEST_REDIS_URL when set, else a throwaway PostgreSQL cluster (initdb into a temporary
 * folder, trust auth, a free port, fsync off) and a Redis with no persistence on a free port, both
 * started here. Sets those variables (and STEPGATE_PG_BIN) in `process.env`, so every test process
 * started afterwards inherits them. Throws at once, naming the package to install, when a binary is
 * missing; rejects if a server does not start (see startOwnPostgres, startOwnRedis).
 */
export async function startTestStores(): Promise<TestStores> {
  const missing = missingStoreBinaries();
  if (missing) throw new Error(missing);
  const described: string[] = [];
  let postgres: OwnPostgres | undefined;
  let redis: OwnRedis | undefined;
  const stop = async () => {
    await Promise.all([postgres?.destroy(), redis?.destroy()]);
  };
  try {
    const binDir = postgresBinDir();
    if (binDir) process.env.STEPGATE_PG_BIN = binDir;
    if (process.env.STEPGATE_TEST_DATABASE_URL)
      described.push(`PostgreSQL: ${process.env.STEPGATE_TEST_DATABASE_URL}`);
    else {
      // Replicas, pools and probes of several tests at once: more than PostgreSQL's default 100.
      postgres = await startOwnPostgres({
        ...(binDir ? { binDir } : {}),
        settings: { max_connections: "300" },
      });
      process.env.STEPGATE_TEST_DATABASE_URL = postgres.url;
      described.push(`PostgreSQL: a throwaway cluster at ${postgres.url} (${binDir})`);
    }
    if (process.env.STEPGATE_TEST_REDIS_URL) described.push(`Redis: ${process.env.STEPGATE_TEST_REDIS_URL}`);
    else {
      redis = await startOwnRedis();
      process.env.STEPGATE_TEST_REDIS_URL = redis.url;
      described.push(`Redis: a throwaway redis-server at ${redis.url} (${version("redis-server")})`);
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { described, stop };
}

function version(program: string): string {
  try {
    return execFileSync(program, ["--version"], { encoding: "utf8" }).trim().split("\n")[0] ?? program;
  } catch {
    return program;
  }
}
