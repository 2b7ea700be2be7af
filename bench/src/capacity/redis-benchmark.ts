import { execFileSync } from "node:child_process";

/** One redis-benchmark test: its command line and requests per second. */
export interface RedisRate {
  test: string;
  command: string;
  opsPerSecond: number;
}

export interface RedisBenchmarkOptions {
  host: string;
  port: number;
  /** A database number no one else uses: it must be empty, and it is flushed at the end. */
  db: number;
  /** Requests per test. */
  requests: number;
  /** Connections (redis-benchmark -c). */
  clients: number;
}

/** A one-command Lua script, sent as EVALSHA, for what a script call costs over a plain command. */
const incrScript = "return redis.call('incr', KEYS[1])";

/** Runs redis-benchmark and parses its CSV (`"test","rps",...`): one rate per test line. */
function run(options: RedisBenchmarkOptions, args: string[]): RedisRate[] {
  const common = ["-h", options.host, "-p", String(options.port), "--dbnum", String(options.db)];
  const load = ["-q", "--csv", "-n", String(options.requests), "-P", "1", "-c", String(options.clients)];
  const all = [...common, ...load, "-r", "100000", ...args];
  const out = execFileSync("redis-benchmark", all, { encoding: "utf8", maxBuffer: 1 << 20 });
  const rates: RedisRate[] = [];
  for (const line of out.split("\n")) {
    const m = /^"([^"]+)","([\d.]+)"/.exec(line);
    if (m)
      rates.push({
        test: m[1] ?? "",
        command: `redis-benchmark ${all.join(" ")}`,
        opsPerSecond: Number(m[2]),
      });
  }
  return rates;
}

/**
 * What one Redis primary serves on this machine, in requests per second, with one request in flight
 * per connection: GET, SET, INCR, MSET (10 keys, the built-in test), MGET of 2 keys, and EVALSHA of a
 * script that makes one INCR. Refuses a database that holds keys; flushes only that database after.
 */
export function measureRedis(options: RedisBenchmarkOptions): RedisRate[] {
  const cli = (...args: string[]) =>
    execFileSync(
      "redis-cli",
      ["-h", options.host, "-p", String(options.port), "-n", String(options.db), ...args],
      {
        encoding: "utf8",
      },
    ).trim();
  const keys = Number(cli("DBSIZE"));
  if (keys !== 0)
    throw new Error(`redis db ${options.db} holds ${keys} keys: not flushing another user's data`);
  try {
    const sha = cli("SCRIPT", "LOAD", incrScript);
    const rates = run(options, ["-t", "get,set,incr,mset"]);
    const rename = (rate: RedisRate | undefined, test: string) => (rate ? [{ ...rate, test }] : []);
    return [
      ...rates,
      ...rename(run(options, ["mget", "key:__rand_int__", "key:__rand_int__"])[0], "MGET (2 keys)"),
      ...rename(run(options, ["evalsha", sha, "1", "counter:__rand_int__"])[0], "EVALSHA (1 INCR)"),
    ];
  } finally {
    cli("FLUSHDB");
  }
}
