import { spawn } from "node:child_process";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

/** A server process a test started, as the reaper finds it: a file whose first line is its PID, and
 * the process name (`/proc/<pid>/comm`) it must have, so a stale file never gets another process killed. */
export interface ReapedProcess {
  /** E.g. PostgreSQL's `postmaster.pid` or the file of redis-server's `--pidfile`. */
  pidFile: string;
  /** E.g. `postgres` or `redis-server`; several names separated by `|` (e.g. `node|MainThread`: Node
   * names its main thread, which renames the process, soon after it starts). */
  comm: string;
}

/** Options of `startOrphanReaper`. */
export interface OrphanReaperOptions {
  /** The servers to SIGKILL, each with the children it has then (PostgreSQL's backends). */
  processes: ReapedProcess[];
  /** A folder to remove (`rm -rf`) after the kills, e.g. the server's temporary data folder. */
  removeDir?: string;
  /** How often the watchdog checks that this process still lives, in ms. Default 500. */
  intervalMs?: number;
}

/** Cleans up after a test's own servers, however the test process ends. */
export interface OrphanReaper {
  /** SIGKILLs the servers named by the PID files (and their children) and removes `removeDir`, now,
   * synchronously. Throws nothing. Also what runs on this process's `exit` event. */
  reapNow(): void;
  /** Stops the watchdog and removes the `exit` handler, leaving the servers alone (for an orderly
   * `destroy()` that stops them itself). Throws nothing. */
  dispose(): void;
}

// The watchdog: a detached shell that outlives a test process killed by a signal (no `exit` event
// then) or by SIGKILL, notices that its parent is gone (its parent PID changes when it is re-parented)
// and kills what the PID files name. Arguments: parent PID, poll seconds, folder, then comm:file pairs.
const watchdogScript = `
parent=$1; interval=$2; dir=$3; shift 3
while [ "$(cut -d' ' -f4 /proc/$$/stat)" = "$parent" ]; do sleep "$interval"; done
for pair in "$@"; do
  comm=\${pair%%:*}; file=\${pair#*:}
  [ -f "$file" ] || continue
  pid=$(head -n 1 "$file")
  case "$pid" in ''|*[!0-9]*) continue;; esac
  cat /proc/$pid/comm 2>/dev/null | grep -qxE "$comm" || continue
  kill -STOP "$pid" 2>/dev/null
  pkill -KILL -P "$pid" 2>/dev/null
  kill -KILL "$pid" 2>/dev/null
done
[ -n "$dir" ] && rm -rf "$dir"
`;

// One `exit` listener for every reaper, however many servers a test starts.
const onExit = new Set<() => void>();
const reapAll = () => {
  for (const reap of onExit) reap();
};

/**
 * Makes sure the servers a test started do not outlive it: on this process's `exit` event it
 * SIGKILLs them (by the PIDs in their PID files, checked against the process name) with their
 * children and removes `removeDir`; and a detached watchdog shell does the same within `intervalMs`
 * if this process dies without an `exit` event (a signal, SIGKILL, a test runner's timeout). The PID
 * files are read at that moment, so servers restarted since are found too. Throws nothing; if the
 * watchdog cannot be started, only the `exit` handler remains.
 */
export function startOrphanReaper(options: OrphanReaperOptions): OrphanReaper {
  const { processes, removeDir = "", intervalMs = 500 } = options;
  const watchdog = spawn(
    "/bin/sh",
    [
      "-c",
      watchdogScript,
      "orphan-reaper",
      String(process.pid),
      String(intervalMs / 1000),
      removeDir,
      ...processes.map((p) => `${p.comm}:${p.pidFile}`),
    ],
    { detached: true, stdio: "ignore" },
  );
  watchdog.on("error", () => {});
  watchdog.unref();
  const reapNow = () => {
    for (const p of processes) {
      const pid = pidFromFile(p.pidFile);
      if (pid !== undefined && p.comm.split("|").includes(processName(pid) ?? "")) killTree(pid);
    }
    if (removeDir) rmSync(removeDir, { recursive: true, force: true });
  };
  if (!process.listeners("exit").includes(reapAll)) process.on("exit", reapAll);
  onExit.add(reapNow);
  return {
    reapNow,
    dispose() {
      onExit.delete(reapNow);
      if (watchdog.exitCode === null && watchdog.signalCode === null) watchdog.kill("SIGKILL");
    },
  };
}

/** The PID on the first line of `file`, or `undefined` if it has none or cannot be read. */
export function pidFromFile(file: string): number | undefined {
  try {
    const pid = Number(readFileSync(file, "utf8").split("\n", 1)[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** `/proc/<pid>/comm`, or `undefined` if there is no such process. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** The PIDs of `pid`'s live children, from /proc. */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (stat && stat.ppid === pid && stat.state !== "Z") children.push(Number(entry));
  }
  return children;
}

/** True while `pid` is a process that is not a zombie. */
export function isAlive(pid: number): boolean {
  const stat = procStat(pid);
  return stat !== undefined && stat.state !== "Z" && stat.state !== "X";
}

/** SIGKILLs `pid` and its children (stopped first, so it forks no new one meanwhile); returns every
 * PID it signalled. Throws nothing. */
export function killTree(pid: number): number[] {
  signal(pid, "SIGSTOP");
  const pids = [...childPids(pid), pid];
  for (const p of pids) signal(p, "SIGKILL");
  return pids;
}

/** Resolves once none of `pids` is alive (zombies count as gone), or after `timeoutMs` ms with the
 * ones still alive. Never rejects. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  let alive = pids.filter(isAlive);
  while (alive.length > 0 && Date.now() < deadline) {
    await sleep(20);
    alive = alive.filter(isAlive);
  }
  return alive;
}

/**
 * Awaits `promise` while keeping this process alive: a server child that is unreferenced (so a test
 * that forgets to stop it can still end) does not keep the event loop going, so without this a
 * wait for its exit could let the process end mid-await. Rejects as `promise` does.
 */
export async function keepAliveUntil<T>(promise: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 60_000);
  try {
    return await promise;
  } finally {
    clearInterval(timer);
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone already.
  }
}

function procStat(pid: number): { ppid: number; state: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return { state: fields[0] ?? "", ppid: Number(fields[1]) };
  } catch {
    return undefined;
  }
}
