import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

const bin = process.env.STEPGATE_TEST_PG_BIN ?? "/usr/lib/postgresql/15/bin";

/** A PostgreSQL server of the test's own on a loopback port, to stop and start at will. */
export interface OwnPostgres {
  /** `postgresql://postgres@127.0.0.1:<port>/<database>`. */
  url(database?: string): string;
  /** The postmaster's PID while it runs. */
  readonly pid: number | undefined;
  /** Stops the server by its PID: SIGINT (fast shutdown: sessions are ended) or SIGQUIT (immediate). */
  stop(signal?: "SIGINT" | "SIGQUIT"): Promise<void>;
  /** Starts it again on the same port and data; resolves once it accepts connections. */
  start(): Promise<void>;
  /** Stops it and removes its data. */
  close(): Promise<void>;
}

/**
 * A fresh cluster (initdb, trust auth) in a temporary folder, run as the `postgres` user when this
 * process is root (PostgreSQL refuses to run as root), listening on 127.0.0.1 only with its socket
 * in that folder. fsync is off: the tests kill processes, not machines.
 */
export async function startOwnPostgres(): Promise<OwnPostgres> {
  const dir = mkdtempSync(join(tmpdir(), "stepgate-pg-"));
  const data = join(dir, "data");
  const user = process.getuid?.() === 0 ? idsOf("postgres") : undefined;
  if (user) chownSync(dir, user.uid, user.gid);
  execFileSync(
    join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"],
    {
      ...(user ?? {}),
      stdio: "ignore",
    },
  );
  let port = 0;
  let child: ChildProcess | undefined;
  const url = (database = "postgres") => `postgresql://postgres@127.0.0.1:${port}/${database}`;
  const launch = async () => {
    const args = [
      "-D",
      data,
      "-p",
      String(port),
      "-k",
      dir,
      "-c",
      "listen_addresses=127.0.0.1",
      "-c",
      "fsync=off",
    ];
    const c = spawn(join(bin, "postgres"), args, { ...(user ?? {}), stdio: "ignore" });
    child = c;
    for (let i = 0; i < 100 && c.exitCode === null; i++) {
      try {
        execFileSync(join(bin, "pg_isready"), ["-q", "-h", "127.0.0.1", "-p", String(port)]);
        return true;
      } catch {
        await sleep(100);
      }
    }
    return false;
  };
  const start = async () => {
    if (await launch()) return;
    throw new Error(`postgres did not start on port ${port}`);
  };
  const stop = async (signal: "SIGINT" | "SIGQUIT" = "SIGINT") => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((resolve) => c.once("exit", resolve));
    c.kill(signal);
    await exited;
  };
  // A port another process holds makes postgres exit at once: try another.
  for (let attempt = 0; ; attempt++) {
    port = 30_000 + Math.floor(Math.random() * 20_000);
    if (await launch()) break;
    await stop();
    if (attempt === 4) {
      rmSync(dir, { recursive: true, force: true });
      throw new Error("postgres did not start");
    }
  }
  return {
    url,
    get pid() {
      return child?.exitCode === null ? child.pid : undefined;
    },
    stop,
    start,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function idsOf(name: string): { uid: number; gid: number } {
  const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
  return { uid: id("-u"), gid: id("-g") };
}
