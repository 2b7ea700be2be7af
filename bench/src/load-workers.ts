import { type ChildProcess, fork } from "node:child_process";
import { join } from "node:path";
import type { WorkerCommand, WorkerReply } from "./worker-messages.ts";

const workerScript = join(import.meta.dirname, "load-worker.ts");

/** Load generator processes, driven over IPC; `C` is what they understand (load-worker.ts: WorkerCommand). */
export interface LoadWorkers<C extends { type: string } = WorkerCommand> {
  readonly pids: number[];
  readonly size: number;
  /** Sends `command` to worker `index` and resolves with its answer. */
  send<T>(index: number, command: C): Promise<T>;
  /** Sends each worker its command at once and resolves with every answer, in worker order. */
  all<T>(command: (index: number) => C): Promise<T[]>;
  close(): Promise<void>;
}

/**
 * `size` load generator processes. With `cpuList` (as `taskset -c` takes it, e.g. `"1"`), each is
 * started through taskset, which execs Node in place: the generators stay off the replicas' core.
 * `script` is the worker's code (default load-worker.ts); it must answer `{ type: "close" }` and
 * reply to `{ id, command }` messages as load-worker.ts does.
 */
export function startLoadWorkers<C extends { type: string } = WorkerCommand>(
  size: number,
  cpuList?: string,
  script: string = workerScript,
): LoadWorkers<C> {
  const children: ChildProcess[] = [];
  const pending = new Map<
    number,
    { worker: number; resolve(value: unknown): void; reject(error: Error): void }
  >();
  let nextId = 0;
  for (let i = 0; i < size; i++) {
    // Structured clone over IPC, so latency arrays travel as Float64Arrays rather than JSON.
    const child = fork(script, [], {
      serialization: "advanced",
      ...(cpuList === undefined
        ? {}
        : { execPath: "taskset", execArgv: ["-c", cpuList, process.execPath, ...process.execArgv] }),
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    child.on("message", (reply: WorkerReply) => {
      const waiter = pending.get(reply.id);
      pending.delete(reply.id);
      if (reply.ok) waiter?.resolve(reply.value);
      else waiter?.reject(new Error(`load worker ${i + 1}: ${reply.error}`));
    });
    // A worker that died (Ctrl-C reaches the whole process group) fails what waits on it; the
    // error event is only an EPIPE on a send to it, and that send is failed by its callback.
    child.on("error", () => {});
    child.on("exit", (code, signal) => {
      for (const [id, waiter] of pending) {
        if (waiter.worker !== i) continue;
        pending.delete(id);
        waiter.reject(new Error(`load worker ${i + 1} exited (${signal ?? code})`));
      }
    });
    children.push(child);
  }
  // Every worker script answers `close`, whatever else it understands.
  const send = <T>(index: number, command: C | { type: "close" }) =>
    new Promise<T>((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { worker: index, resolve: resolve as (value: unknown) => void, reject });
      children[index]?.send(
        { id, command } satisfies { id: number; command: C | { type: "close" } },
        (error) => {
          if (error === null) return;
          pending.delete(id);
          reject(new Error(`load worker ${index + 1}: ${error.message}`));
        },
      );
    });
  return {
    pids: children.map((c) => c.pid ?? 0),
    size,
    send,
    all: <T>(command: (index: number) => C) => Promise.all(children.map((_, i) => send<T>(i, command(i)))),
    async close() {
      await Promise.all(
        children.map(async (child, i) => {
          if (child.exitCode !== null || !child.connected) return;
          const exited = new Promise((resolve) => child.once("exit", resolve));
          await send(i, { type: "close" }).catch(() => {});
          const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
          await exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}
