import { execFileSync } from "node:child_process";
import { join } from "node:path";

const root = join(import.meta.dirname, "../..");

/** The commit measured, and whether the server or its packages had uncommitted changes. */
export interface CodeRevision {
  commit: string;
  /** Paths under services/ and packages/ that differ from the commit. */
  uncommitted: string[];
}

export function codeRevision(): CodeRevision {
  const git = (...args: string[]) => execFileSync("git", args, { cwd: root, encoding: "utf8" }).trim();
  try {
    const status = git("status", "--porcelain", "--", "services", "packages");
    return {
      commit: git("rev-parse", "HEAD"),
      uncommitted: status ? status.split("\n").map((l) => l.slice(3)) : [],
    };
  } catch {
    return { commit: "unknown", uncommitted: [] };
  }
}
