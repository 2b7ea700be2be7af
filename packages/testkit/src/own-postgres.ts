import { type ChildProcess, spawn } from "node:child_process";
import { chownSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import pg from "pg";
import { postgresBinDir } from "./binaries.ts";
import { freePort } from "./free-port.ts";
import { isAlive, keepAliveUntil, killTree, startOrphanReaper, waitGone } from "./orphan-reaper.ts";

/** How `stop()` asks PostgreSQL to end (by the postmaster's PID; see the PostgreSQL docs, "Shutting
 * Down the Server"): `SIGTERM` smart shutdown (no new sessions, waits for open ones), `SIGINT` fast
 * (ends open sessions, checkpoint), `SIGQUIT` immediate (no checkpoint: crash recovery at the next
 * start), `SIGKILL` a crash (the postmaster and every child at once). */
export type PostgresStopSignal = "SIGTERM" | "SIGINT" | "SIGQUIT" | "SIGKILL";

/** Options of `startOwnPostgres`; times are in ms. */
export interface OwnPostgresOptions {
  /** The port on 127.0.0.1, kept across restarts. Default: a free one. */
  port?: number;
  /** How long `initdb`, and each start until a `select 1` succeeds, may take, in ms. Default 20_000. */
  startTimeoutMs?: number;
  /** How long `stop()` waits for the exit after its signal before SIGKILLing everything, in ms.
   * Default 10_000. */
  stopTimeoutMs?: number;
  /** How long a `SIGTERM` smart shutdown may wait for sessions to end before `stop()` turns it into
   * a fast one (SIGINT), in ms. Default 2000. */
  smartShutdownMs?: number;
  /** Where `initdb` and `postgres` are. Default `postgresBinDir()` (STEPGATE_PG_BIN, the PATH, the
   * newest /usr/lib/postgresql/<major>/bin), else `/usr/lib/postgresql/15/bin`. */
  binDir?: string;
  /** Extra server settings (`-c name=value`), e.g. `{ max_connections: "50" }`; they win over the
   * defaults (fsync=off, full_page_writes=off, shared_buffers=16MB). */
  settings?: Readonly<Record<string, string>>;
  /** The folder the temporary folder is made in; the `postgres` user must be able to enter it.
   * Default `os.tmpdir()`. */
  parentDir?: string;
  /** Makes a streaming standby of this running server instead of a new cluster: `pg_basebackup -R
   * -X stream` (standby.signal and primary_conninfo written), started in hot standby. It is promoted
   * with `select pg_promote()`. */
  standbyOf?: OwnPostgres;
  /** The standby's name in `pg_stat_replication.application_name` (for `synchronous_standby_names`).
   * Default `standby`. */
  applicationName?: string;
}

/** A PostgreSQL server of the test's own, on 127.0.0.1, stopped and started by PID with real signals. */
export interface OwnPostgres {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres` (trust auth). */
  readonly url: string;
  /** The address the server listens on: always loopback. */
  readonly host: "127.0.0.1";
  /** Its TCP port, the same across restarts. */
  readonly port: number;
  /** The temporary folder: `data/` (the cluster), the Unix socket, `postgres.log`. */
  readonly dir: string;
  /** The postmaster's PID while it runs (or the last one). */
  readonly pid: number | undefined;
  /** True from a successful `start()` until the postmaster exits. */
  readonly running: boolean;
  /** The server log (`postgres.log`) so far, at most its last `maxChars` characters (default 4000). */
  log(maxChars?: number): string;
  /** Starts the server again on the same data folder and port and resolves once `select 1` works.
   * Rejects if it is running or destroyed, and, after SIGKILLing it, if it exits or does not answer
   * within `startTimeoutMs` ms (the error holds the log's tail). */
  start(): Promise<void>;
  /** Stops the server by its PID with `signal` (default `SIGTERM`: smart, turned fast after
   * `smartShutdownMs`; see `PostgresStopSignal`) and waits until the postmaster and all its children
   * are gone, SIGKILLing them after `stopTimeoutMs` ms. Resolves with the signal that ended it
   * (at once, with the last one, if it is not running). Never rejects. Data committed before a
   * SIGKILL survives it: with fsync=off a commit still reaches the kernel before it returns. */
  stop(signal?: PostgresStopSignal): Promise<PostgresStopSignal | undefined>;
  /** SIGKILLs the server if it runs and removes the temporary folder. Idempotent; never rejects. */
  destroy(): Promise<void>;
}

const defaultBinDir = postgresBinDir() ?? "/usr/lib/postgresql/15/bin";

/**
 * Creates a PostgreSQL cluster in a fresh temporary folder (`initdb`, trust auth, superuser
 * `postgres`; or, with `standbyOf`, a streaming standby made by `pg_basebackup`) and starts it on 127.0.0.1:`port` with its Unix socket in that folder, tuned to start
 * fast and not to sync (fsync=off, full_page_writes=off, shared_buffers=16MB). When this process runs
 * as root, `initdb` and `postgres` run as the `postgres` user (PostgreSQL refuses root) and the folder
 * is handed to that user. Nothing is left behind if the test process dies: an `exit` handler and a
 * watchdog (`startOrphanReaper`) SIGKILL the server and remove the folder. Rejects, having removed
 * everything, if `initdb` fails, or the server does not answer, within `startTimeoutMs` ms, or, as
 * root, if there is no `postgres` user.
 */
export async function startOwnPostgres(options: OwnPostgresOptions = {}): Promise<OwnPostgres> {
  const { startTimeoutMs = 20_000, stopTimeoutMs = 10_000, smartShutdownMs = 2000 } = options;
  const binDir = options.binDir ?? defaultBinDir;
  const port = options.port ?? (await freePort());
  const owner = process.getuid?.() === 0 ? systemUser("postgres") : undefined;
  const dir = mkdtempSync(join(options.parentDir ?? tmpdir(), "stepgate-pg-"));
  if (owner) chownSync(dir, owner.uid, owner.gid);
  const dataDir = join(dir, "data");
  const logFile = join(dir, "postgres.log");
  const pidFile = join(dataDir, "postmaster.pid");
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const reaper = startOrphanReaper({ processes: [{ pidFile, comm: "postgres" }], removeDir: dir });
  const settings: Record<string, string> = {
    listen_addresses: "127.0.0.1",
    unix_socket_directories: dir,
    fsync: "off",
    full_page_writes: "off",
    shared_buffers: "16MB",
    max_connections: "100",
    ...options.settings,
  };
  const args = [
    "-D",
    dataDir,
    "-p",
    String(port),
    ...Object.entries(settings).flatMap(([k, v]) => ["-c", `${k}=${v}`]),
  ];
  const spawnOptions = { ...(owner ?? {}), env: { PATH: process.env.PATH ?? "/usr/bin:/bin", LC_ALL: "C" } };

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let lastSignal: PostgresStopSignal | undefined;
  let destroyed = false;
  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  const log = (maxChars = 4000) => {
    try {
      return readFileSync(logFile, "utf8").slice(-maxChars);
    } catch {
      return "";
    }
  };

  const crash = async () => {
    const pid = child?.pid;
    if (pid === undefined) return;
    const pids = killTree(pid);
    await keepAliveUntil(exited);
    await waitGone(pids, stopTimeoutMs);
    // Every process is gone: a stale postmaster.pid could later name an unrelated process.
    rmSync(pidFile, { force: true });
  };

  const start = async () => {
    if (destroyed) throw new Error("own PostgreSQL: destroyed");
    if (isRunning()) throw new Error("own PostgreSQL: already running");
    const logFd = openSync(logFile, "a");
    const c = spawn(join(binDir, "postgres"), args, { ...spawnOptions, stdio: ["ignore", logFd, logFd] });
    closeSync(logFd);
    // Unreferenced: a test that forgets destroy() still ends, and the exit handler kills the server.
    c.unref();
    child = c;
    exited = new Promise((resolve) => {
      c.once("exit", () => resolve());
      c.once("error", () => resolve());
    });
    let gone = false;
    void exited.then(() => {
      gone = true;
    });
    const deadline = Date.now() + startTimeoutMs;
    let lastError = "";
    while (Date.now() < deadline && !gone) {
      const probe = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
      try {
        await probe.connect();
        await probe.query("select 1");
        await probe.end();
        return;
      } catch (error) {
        lastError = error instanceof Error ? error.message : String(error);
        await probe.end().catch(() => {});
        await sleep(50);
      }
    }
    await crash();
    throw new Error(
      `own PostgreSQL on port ${port} ${gone ? "exited" : `did not answer within ${startTimeoutMs} ms`} ` +
        `(last error: ${lastError}); log:\n${log()}`,
    );
  };

  const stop = async (signal: PostgresStopSignal = "SIGTERM") => {
    const c = child;
    if (!c || !isRunning() || c.pid === undefined) return lastSignal;
    const pid = c.pid;
    const waitExit = async (ms: number) => {
      const deadline = Date.now() + ms;
      while (isAlive(pid) && Date.now() < deadline) await sleep(20);
      return !isAlive(pid);
    };
    lastSignal = signal;
    if (signal === "SIGKILL") {
      await crash();
      return lastSignal;
    }
    const send = (name: NodeJS.Signals) => {
      try {
        process.kill(pid, name);
      } catch {
        // It exited meanwhile.
      }
    };
    send(signal);
    if (signal === "SIGTERM" && !(await waitExit(smartShutdownMs))) {
      lastSignal = "SIGINT";
      send("SIGINT");
    }
    if (!(await waitExit(stopTimeoutMs))) {
      lastSignal = "SIGKILL";
      await crash();
      return lastSignal;
    }
    await keepAliveUntil(exited);
    return lastSignal;
  };

  try {
    if (options.standbyOf) {
      const from = options.standbyOf;
      const conninfo = `host=127.0.0.1 port=${from.port} user=postgres application_name=${options.applicationName ?? "standby"}`;
      await run(
        join(binDir, "pg_basebackup"),
        ["-d", conninfo, "-D", dataDir, "-R", "-X", "stream", "--checkpoint=fast", "--no-sync"],
        spawnOptions,
        startTimeoutMs,
      );
    } else {
      await run(
        join(binDir, "initdb"),
        [
          "-D",
          dataDir,
          "-U",
          "postgres",
          "--auth=trust",
          "--encoding=UTF8",
          "--locale=C",
          "--no-sync",
          "--no-instructions",
        ],
        spawnOptions,
        startTimeoutMs,
      );
    }
    await start();
  } catch (error) {
    reaper.reapNow();
    reaper.dispose();
    throw error;
  }

  return {
    url,
    host: "127.0.0.1",
    port,
    dir,
    get pid() {
      return child?.pid;
    },
    get running() {
      return isRunning();
    },
    log,
    start,
    stop,
    async destroy() {
      if (destroyed) return;
      destroyed = true;
      await crash().catch(() => {});
      reaper.reapNow();
      reaper.dispose();
    },
  };
}

/** The uid and gid of a local user, from /etc/passwd; throws if there is no such user. */
function systemUser(name: string): { uid: number; gid: number } {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const [user, , uid, gid] = line.split(":");
    if (user === name) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`own PostgreSQL: running as root needs a "${name}" user to run the server as`);
}

/** Runs a command to its end; rejects with its output if it fails or takes longer than `timeoutMs` ms. */
function run(
  command: string,
  args: string[],
  options: { uid?: number; gid?: number; env: NodeJS.ProcessEnv },
  timeoutMs: number,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const c = spawn(command, args, {
      ...options,
      stdio: ["ignore", "pipe", "pipe"],
      timeout: timeoutMs,
      killSignal: "SIGKILL",
    });
    let output = "";
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString("utf8")).slice(-4000);
    };
    c.stdout?.on("data", keep);
    c.stderr?.on("data", keep);
    c.once("error", reject);
    c.once("exit", (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${command} ended with ${signal ?? `exit code ${code}`}:\n${output}`));
    });
  });
}
