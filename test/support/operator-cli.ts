import { execFile } from "node:child_process";
import { join } from "node:path";

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
