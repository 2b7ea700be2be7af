import { execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const cli = join(import.meta.dirname, "../../packages/cli/src/main.ts");

/** How one run of the `stepgate` CLI ended. */
export interface CliRun {
  exit: number;
  stdout: string;
  stderr: string;
  /** stdout as one JSON document, when it is one. */
  json: unknown;
}

/** Runs packages/cli/src/main.ts as a process of its own with `args` and only `env` (and PATH). */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: { PATH: process.env.PATH, ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const exit = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ exit, stdout, stderr, json });
      },
    );
  });
}

/** A CLI run that keeps going (`audit tail --follow`): its stdout lines as they come, and how to stop it. */
export interface FollowingCli {
  /** Resolves with the first stdout line that matches. */
  lineMatching(pattern: RegExp): Promise<string>;
  /** Sends SIGINT and resolves with the exit code. */
  interrupt(): Promise<number | null>;
}

export function followCli(args: string[], env: Record<string, string> = {}): FollowingCli {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines: string[] = [];
  const waiting: { pattern: RegExp; resolve: (line: string) => void }[] = [];
  createInterface({ input: child.stdout }).on("line", (line) => {
    lines.push(line);
    for (const w of waiting.filter((w) => w.pattern.test(line))) {
      waiting.splice(waiting.indexOf(w), 1);
      w.resolve(line);
    }
  });
  return {
    lineMatching: (pattern) =>
      new Promise((resolve) => {
        const seen = lines.find((l) => pattern.test(l));
        if (seen !== undefined) resolve(seen);
        else waiting.push({ pattern, resolve });
      }),
    interrupt() {
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      child.kill("SIGINT");
      return exited;
    },
  };
}
