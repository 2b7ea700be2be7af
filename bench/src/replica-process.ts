import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const mainScript = join(import.meta.dirname, "../../services/stepgate/src/main.ts");

/** One Stepgate replica as a process of its own, so its CPU and memory are its own. */
export interface ReplicaProcess {
  readonly id: string;
  readonly port: number;
  readonly pid: number;
  /** Lines it wrote at warn level or above (the run sets STEPGATE_LOG_LEVEL=warn). */
  readonly complaints: string[];
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `services/stepgate/src/main.ts` with `env` and resolves once it logs "stepgate serving". */
export async function startReplicaProcess(
  id: string,
  port: number,
  env: Record<string, string>,
): Promise<ReplicaProcess> {
  const child: ChildProcess = spawn(process.execPath, [mainScript], {
    // Only what we pass: an inherited OTEL_* variable would switch exporters on and skew the figures.
    env: {
      PATH: process.env.PATH ?? "",
      // Profiling: e.g. STEPGATE_BENCH_REPLICA_NODE_OPTIONS="--cpu-prof --cpu-prof-dir=/tmp/prof".
      ...(process.env.STEPGATE_BENCH_REPLICA_NODE_OPTIONS
        ? { NODE_OPTIONS: process.env.STEPGATE_BENCH_REPLICA_NODE_OPTIONS }
        : {}),
      ...env,
      STEPGATE_PORT: String(port),
      STEPGATE_REPLICA_ID: id,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<string>((resolve) =>
    child.once("exit", (code, signal) => resolve(String(signal ?? code))),
  );
  const complaints: string[] = [];
  const recent: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${id} did not serve within 30 s`)), 30_000);
    let serving = false;
    const collect = (line: string) => {
      recent.push(line);
      if (recent.length > 10) recent.shift();
      if (line.includes('"stepgate serving"')) {
        serving = true;
        clearTimeout(timer);
        resolve();
      } else if (serving && complaints.length < 1000) {
        complaints.push(line);
      }
    };
    // Both pipes are always read, so a chatty replica never blocks on a full pipe.
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", collect);
    createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", collect);
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${id} exited (${how}) before serving:\n${recent.join("\n")}`));
    });
  }).catch((error: unknown) => {
    child.kill("SIGKILL");
    throw error;
  });
  return {
    id,
    port,
    pid: child.pid ?? 0,
    complaints,
    async stop(graceMs = 5000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
