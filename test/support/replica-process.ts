import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const mainScript = join(import.meta.dirname, "../../services/stepgate/src/main.ts");

/** One Stepgate replica as a real process, started and stopped by PID with real signals. */
export interface ReplicaProcess {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  /** Every log line it wrote, across restarts. */
  readonly lines: string[];
  start(): Promise<void>;
  /** Sends `signal` and waits for the exit; returns the exit code, or the signal that ended it. */
  stop(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals | null>;
  /** Resolves when the running process exits by itself. */
  exited(): Promise<number | NodeJS.Signals | null>;
  readonly running: boolean;
}

export function replicaProcess(id: string, port: number, env: NodeJS.ProcessEnv): ReplicaProcess {
  let child: ChildProcess | undefined;
  let exit: Promise<number | NodeJS.Signals | null> = Promise.resolve(null);
  const lines: string[] = [];
  return {
    id,
    port,
    address: `127.0.0.1:${port}`,
    lines,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      const c = spawn(process.execPath, [mainScript], {
        env: { PATH: process.env.PATH, ...env, STEPGATE_PORT: String(port), STEPGATE_REPLICA_ID: id },
        stdio: ["ignore", "pipe", "pipe"],
      });
      child = c;
      exit = new Promise((resolve) => c.once("exit", (code, signal) => resolve(signal ?? code)));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${id} did not serve within 30 s`)), 30_000);
        const collect = (line: string) => {
          lines.push(line);
          if (line.includes('"stepgate serving"')) {
            clearTimeout(timer);
            resolve();
          }
        };
        createInterface({ input: c.stdout as NodeJS.ReadableStream }).on("line", collect);
        createInterface({ input: c.stderr as NodeJS.ReadableStream }).on("line", collect);
        void exit.then((how) => {
          clearTimeout(timer);
          reject(new Error(`${id} exited (${how}) before serving:\n${lines.slice(-5).join("\n")}`));
        });
      });
    },
    async stop(signal = "SIGTERM") {
      if (child && child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exit;
    },
    exited: () => exit,
  };
}
