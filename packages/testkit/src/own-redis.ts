import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";
import { keepAliveUntil, startOrphanReaper } from "./orphan-reaper.ts";

/** Options of `startOwnRedis`; times are in ms. */
export interface OwnRedisOptions {
  /** The port on 127.0.0.1, kept across restarts. Default: a free one. */
  port?: number;
  /** How long each start may take until PING answers, in ms. Default 10_000. */
  startTimeoutMs?: number;
  /** How long `stop()` waits for the exit after its signal before SIGKILL, in ms. Default 5000. */
  stopTimeoutMs?: number;
  /** Extra `redis-server` arguments, e.g. `["--maxmemory", "10mb"]`. */
  args?: string[];
  /** Runs a Redis Sentinel instead of a server: these lines (e.g. `sentinel monitor m 127.0.0.1 6379 2`)
   * go into a `sentinel.conf` of its own, which Sentinel rewrites as it learns the topology. */
  sentinelConfig?: string[];
}

/** A Redis server of the test's own on 127.0.0.1, stopped and started by PID with real signals. */
export interface OwnRedis {
  /** `redis://127.0.0.1:<port>`. */
  readonly url: string;
  /** The address the server listens on: always loopback. */
  readonly host: "127.0.0.1";
  /** Its TCP port, the same across restarts. */
  readonly port: number;
  /** The redis-server PID while it runs (or the last one). */
  readonly pid: number | undefined;
  /** True from a successful `start()` until the process exits. */
  readonly running: boolean;
  /** The server log so far, at most its last `maxChars` characters (default 4000). */
  log(maxChars?: number): string;
  /** Starts redis-server again on the same port, EMPTY: it runs with `--save "" --appendonly no`,
   * so nothing written before a stop survives it, whatever the signal (as after a failover to an
   * empty replica). Resolves once PING answers. Rejects if it is running or destroyed, and, after
   * SIGKILLing it, if it exits or does not answer within `startTimeoutMs` ms (the error holds the
   * log's tail). */
  start(): Promise<void>;
  /** Sends `signal` (default `SIGTERM`: a clean shutdown; `SIGKILL`: a crash) to the PID and waits for
   * the exit, SIGKILLing it after `stopTimeoutMs` ms. Resolves with the signal that ended it (at once,
   * with the last one, if it is not running). Never rejects. */
  stop(signal?: NodeJS.Signals): Promise<NodeJS.Signals | undefined>;
  /** SIGKILLs the server if it runs and removes its temporary folder. Idempotent; never rejects. */
  destroy(): Promise<void>;
}

/**
 * Starts `redis-server` on 127.0.0.1 (a free port by default) with no persistence (`--save ""
 * --appendonly no`) and its PID file and log in a fresh temporary folder. Nothing is left behind if
 * the test process dies: an `exit` handler and a watchdog (`startOrphanReaper`) SIGKILL it and remove
 * the folder. Rejects, having removed everything, if redis-server cannot be run or does not answer
 * PING within `startTimeoutMs` ms.
 */
export async function startOwnRedis(options: OwnRedisOptions = {}): Promise<OwnRedis> {
  const { startTimeoutMs = 10_000, stopTimeoutMs = 5000 } = options;
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), "stepgate-redis-"));
  const pidFile = join(dir, "redis.pid");
  const logFile = join(dir, "redis.log");
  const reaper = startOrphanReaper({ processes: [{ pidFile, comm: "redis-server" }], removeDir: dir });
  const sentinelFile = join(dir, "sentinel.conf");
  if (options.sentinelConfig) writeFileSync(sentinelFile, `${options.sentinelConfig.join("\n")}\n`);
  const args = [
    ...(options.sentinelConfig ? [sentinelFile, "--sentinel"] : []),
    "--port",
    String(port),
    "--bind",
    "127.0.0.1",
    "--save",
    "",
    "--appendonly",
    "no",
    "--daemonize",
    "no",
    "--dir",
    dir,
    "--pidfile",
    pidFile,
    "--logfile",
    logFile,
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  let exited: Promise<NodeJS.Signals | number | null> = Promise.resolve(null);
  let lastSignal: NodeJS.Signals | undefined;
  let destroyed = false;
  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const log = (maxChars = 4000) => {
    try {
      return readFileSync(logFile, "utf8").slice(-maxChars);
    } catch {
      return "";
    }
  };
  const kill = async (signal: NodeJS.Signals) => {
    const c = child;
    if (!c || !isRunning()) return;
    c.kill(signal);
    const timer = setTimeout(() => c.kill("SIGKILL"), stopTimeoutMs);
    await keepAliveUntil(exited);
    clearTimeout(timer);
    // A PID file left by a crash could later name an unrelated process.
    rmSync(pidFile, { force: true });
  };

  const start = async () => {
    if (destroyed) throw new Error("own Redis: destroyed");
    if (isRunning()) throw new Error("own Redis: already running");
    const c = spawn("redis-server", args, { stdio: "ignore" });
    c.unref();
    child = c;
    exited = new Promise((resolve) => {
      c.once("exit", (code, signal) => resolve(signal ?? code));
      c.once("error", () => resolve(null));
    });
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    const deadline = Date.now() + startTimeoutMs;
    while (Date.now() < deadline && !gone) {
      if (await ping(port)) return;
      await sleep(30);
    }
    await kill("SIGKILL");
    throw new Error(
      `own Redis on port ${port} ${gone ? "exited" : `did not answer within ${startTimeoutMs} ms`}; log:\n${log()}`,
    );
  };

  try {
    await start();
  } catch (error) {
    reaper.reapNow();
    reaper.dispose();
    throw error;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    get pid() {
      return child?.pid;
    },
    get running() {
      return isRunning();
    },
    log,
    start,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      if (!isRunning()) return lastSignal;
      lastSignal = signal;
      const c = child;
      await kill(signal);
      if (c?.signalCode === "SIGKILL" && signal !== "SIGKILL") lastSignal = "SIGKILL";
      return lastSignal;
    },
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await kill("SIGKILL");
      reaper.reapNow();
      reaper.dispose();
    },
  };
}

/** True if a Redis on 127.0.0.1:`port` answers PING within 1 s. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (data) => done(data.toString("latin1").startsWith("+PONG")));
  });
}
