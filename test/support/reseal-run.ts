import { spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";

const tool = join(import.meta.dirname, "../../services/stepgate/src/tools/reseal.ts");

/** How one run of `pnpm reseal` ended: its exit (code or signal), its lines, and its JSON report if it printed one. */
export interface ResealRun {
  exit: number | NodeJS.Signals;
  lines: string[];
  report: Record<string, unknown> | undefined;
}

/**
 * Runs services/stepgate/src/tools/reseal.ts as a process of its own with only `env` (and PATH).
 * With `killOn`, sends `signal` (default SIGKILL) the first time a line matches it.
 */
export function runResealTool(
  env: Record<string, string>,
  killOn?: { line: RegExp; signal?: NodeJS.Signals },
): Promise<ResealRun> {
  const child = spawn(process.execPath, [tool], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  const collect = (line: string) => {
    lines.push(line);
    if (killOn?.line.test(line) && child.exitCode === null) child.kill(killOn.signal ?? "SIGKILL");
  };
  createInterface({ input: child.stdout }).on("line", collect);
  createInterface({ input: child.stderr }).on("line", collect);
  return new Promise((resolve) =>
    child.once("close", (code, signal) => {
      const last = lines.findLast((l) => l.startsWith("{"));
      resolve({ exit: signal ?? code ?? -1, lines, report: last ? JSON.parse(last) : undefined });
    }),
  );
}
