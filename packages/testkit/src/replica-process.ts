import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { type OrphanReaper, startOrphanReaper } from "./orphan-reaper.ts";

const mainScript = join(import.meta.dirname, "../../../services/stepgate/src/main.ts");
const warmScript = join(import.meta.dirname, "../../../services/stepgate/src/tools/warm-compile-cache.ts");

/**
 * The V8 heap flags a production replica runs with: the Dockerfile's CMD passes the same ones
 * (test/image-flags.test.ts keeps the two equal), so tests and the bench measure what ships.
 * A 4 MiB semi-space (default 16 to 64 MiB, grown under load) and old space collected at 1.5x
 * its live size (default up to 4x) keep RSS near what the replica holds (docs/performance.md, "Memory").
 */
export const replicaNodeFlags: readonly string[] = ["--max-semi-space-size=4", "--heap-growing-percent=50"];

/**
 * The environment the Dockerfile sets for replicas (kept equal by the same test): at most two glibc
 * malloc arenas, rather than one per thread that allocates (8 per core), each holding freed memory.
 */
export const replicaRuntimeEnv: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: "2" };

/**
 * Fills `dir` with Node's compile cache for the replica (NODE_COMPILE_CACHE), as the Dockerfile
 * does at build time: a replica started with that cache loads no TypeScript stripper (about 17 MiB
 * of RSS, and seconds of start). It runs tools/warm-compile-cache.ts, which loads every module a
 * replica runs and writes the cache on exit. The cache is per set of V8 flags: pass the replica's.
 */
export function warmCompileCache(dir: string, nodeFlags: readonly string[] = replicaNodeFlags): void {
  spawnSync(process.execPath, [...nodeFlags, warmScript], {
    env: { PATH: process.env.PATH, NODE_COMPILE_CACHE: dir },
    stdio: "ignore",
  });
}

/** How a replica process ended: its exit code, or the signal that ended it; `null` if none was started. */
export type ReplicaExit = number | NodeJS.Signals | null;

/** How `replicaProcess` runs the replica; every field is optional, times are in ms. */
export interface ReplicaProcessOptions {
  /** NODE_OPTIONS for the replica, e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof`. Default: none (this
   * process's own NODE_OPTIONS is not passed on); `undefined` or `""` also mean none. */
  nodeOptions?: string | undefined;
  /** Node and V8 flags before the script, on the command line. Default `replicaNodeFlags`. */
  nodeFlags?: readonly string[];
  /** How long `start()` waits for the "stepgate serving" line, in ms. Default 30_000. */
  startTimeoutMs?: number;
  /** The grace `stop()` gives when called without one: ms after the signal before SIGKILL.
   * Default: none, `stop()` waits for the exit however long it takes. */
  stopGraceMs?: number;
  /** Which lines `lines` keeps: `"all"` (default), or `"after-serving"`: only those written after a
   * start's "stepgate serving" line (e.g. the warnings of a replica run at warn level). */
  keepLines?: "all" | "after-serving";
  /** `lines` keeps at most this many lines, the first ones. Default: no limit. */
  maxLines?: number;
  /** Cores the replica may run on, as `taskset -c` takes them (e.g. `"0"`): the process is started
   * through taskset, which execs Node in place, so the PID is the replica's. Default: any core. */
  cpuList?: string;
}

/** One Stepgate replica as a real process of its own, started and stopped by PID with real signals. */
export interface ReplicaProcess {
  readonly id: string;
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  /** The PID of the current (or last) process; `undefined` before the first `start()`. */
  readonly pid: number | undefined;
  /** The log lines it wrote on stdout and stderr, across restarts, as `keepLines` and `maxLines` say. */
  readonly lines: string[];
  /** True from `start()` until the process exits. */
  readonly running: boolean;
  /** Starts the process (again, after a stop) and resolves once it logs "stepgate serving".
   * Rejects, after SIGKILLing it, if it exits first or does not serve within `startTimeoutMs`;
   * rejects at once if it is already running. */
  start(): Promise<void>;
  /** Sends `signal` (default SIGTERM), then SIGKILL if it is still running `graceMs` (default
   * `stopGraceMs`) later, and waits for the exit. Resolves with how it ended (at once if it is not
   * running); rejects only for a signal name Node does not know. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<ReplicaExit>;
  /** Resolves when the current (or last) process exits, however that happens; never rejects. */
  exited(): Promise<ReplicaExit>;
}

/**
 * A replica of `services/stepgate/src/main.ts` on `port`, not yet started. Its environment is only
 * PATH, `replicaRuntimeEnv`, this process's NODE_COMPILE_CACHE if set, NODE_OPTIONS when
 * `options.nodeOptions` is set, then `env`, then STEPGATE_PORT and
 * STEPGATE_REPLICA_ID (`id`): nothing else is inherited, so e.g. an OTEL_* variable of this process
 * does not switch the replica's exporters on. Both pipes are always read, so a chatty replica never
 * blocks on a full pipe. A replica still running when this process ends is SIGKILLed, on the `exit`
 * event or, if this process dies by a signal, by a watchdog (`startOrphanReaper`). Throws nothing;
 * see `start()` and `stop()`.
 */
export function replicaProcess(
  id: string,
  port: number,
  env: Readonly<Record<string, string | undefined>>,
  options: ReplicaProcessOptions = {},
): ReplicaProcess {
  const { nodeOptions, startTimeoutMs = 30_000, stopGraceMs, keepLines = "all", cpuList } = options;
  const { nodeFlags = replicaNodeFlags } = options;
  const maxLines = options.maxLines ?? Number.POSITIVE_INFINITY;
  let child: ChildProcess | undefined;
  let exit: Promise<ReplicaExit> = Promise.resolve(null);
  const lines: string[] = [];
  const isRunning = () => child !== undefined && child.exitCode === null && child.signalCode === null;
  // The replica's PID in a file of its own, for a reaper that SIGKILLs it if this process dies first.
  let reaped: { reaper: OrphanReaper; pidFile: string } | undefined;
  const watch = (pid: number | undefined) => {
    if (pid === undefined) return;
    if (!reaped) {
      const dir = mkdtempSync(join(tmpdir(), "stepgate-replica-"));
      const pidFile = join(dir, "replica.pid");
      reaped = {
        pidFile,
        reaper: startOrphanReaper({ processes: [{ pidFile, comm: "node|MainThread" }], removeDir: dir }),
      };
    }
    writeFileSync(reaped.pidFile, `${pid}\n`);
  };
  return {
    id,
    port,
    address: `127.0.0.1:${port}`,
    lines,
    get pid() {
      return child?.pid;
    },
    get running() {
      return isRunning();
    },
    async start() {
      if (isRunning()) throw new Error(`${id} is already running`);
      const [command, args] =
        cpuList === undefined
          ? [process.execPath, [...nodeFlags, mainScript]]
          : ["taskset", ["-c", cpuList, process.execPath, ...nodeFlags, mainScript]];
      const c = spawn(command, args, {
        env: {
          PATH: process.env.PATH,
          ...replicaRuntimeEnv,
          // The run's shared compile cache, if it has one (test/global-setup.ts): starts without it
          // strip and compile every module again, about a second each.
          ...(process.env.NODE_COMPILE_CACHE ? { NODE_COMPILE_CACHE: process.env.NODE_COMPILE_CACHE } : {}),
          ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
          ...env,
          STEPGATE_PORT: String(port),
          STEPGATE_REPLICA_ID: id,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = c;
      watch(c.pid);
      exit = new Promise((resolve) =>
        c.once("exit", (code, signal) => {
          // Gone: the PID may be reused, so the reaper must not find it any more.
          if (reaped) rmSync(reaped.pidFile, { force: true });
          resolve(signal ?? code);
        }),
      );
      const recent: string[] = [];
      let serving = false;
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${id} did not serve within ${startTimeoutMs / 1000} s`)),
          startTimeoutMs,
        );
        const collect = (line: string) => {
          recent.push(line);
          if (recent.length > 10) recent.shift();
          if ((serving || keepLines === "all") && lines.length < maxLines) lines.push(line);
          if (!serving && line.includes('"stepgate serving"')) {
            serving = true;
            clearTimeout(timer);
            resolve();
          }
        };
        createInterface({ input: c.stdout as NodeJS.ReadableStream }).on("line", collect);
        createInterface({ input: c.stderr as NodeJS.ReadableStream }).on("line", collect);
        void exit.then((how) => {
          clearTimeout(timer);
          reject(new Error(`${id} exited (${how}) before serving:\n${recent.join("\n")}`));
        });
      }).catch((error: unknown) => {
        c.kill("SIGKILL");
        throw error;
      });
    },
    async stop(signal = "SIGTERM", graceMs = stopGraceMs) {
      if (!child || !isRunning()) return exit;
      const c = child;
      c.kill(signal);
      const timer = graceMs === undefined ? undefined : setTimeout(() => c.kill("SIGKILL"), graceMs);
      const how = await exit;
      clearTimeout(timer);
      return how;
    },
    exited: () => exit,
  };
}

/** `replicaProcess(id, port, env, options)`, started: resolves once it serves, with the same
 * rejections as `ReplicaProcess.start()` (the process is SIGKILLed then). */
export async function startReplicaProcess(
  id: string,
  port: number,
  env: Readonly<Record<string, string | undefined>>,
  options: ReplicaProcessOptions = {},
): Promise<ReplicaProcess> {
  const replica = replicaProcess(id, port, env, options);
  await replica.start();
  return replica;
}
