import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc's CPU counters (`getconf CLK_TCK`; 100 on Linux everywhere in practice). */
export const clockTicks = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/**
 * CPU seconds a process has used, all threads, user and system (/proc/<pid>/stat fields 14 and 15),
 * plus what its reaped children used (16 and 17), so a PostgreSQL postmaster accounts for exited
 * backends. 0 for a process that is gone.
 */
export function cpuSeconds(pid: number, withChildren = false): number {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const at = (field: number) => Number(fields[field - 3] ?? 0);
  const ticks = at(14) + at(15) + (withChildren ? at(16) + at(17) : 0);
  return ticks / clockTicks;
}

/** Peak (VmHWM) and current (VmRSS) resident memory of a process, in bytes. */
export function residentMemory(pid: number): { peakBytes: number; rssBytes: number } {
  let status = "";
  try {
    status = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return { peakBytes: 0, rssBytes: 0 };
  }
  const kib = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0) * 1024;
  return { peakBytes: kib("VmHWM"), rssBytes: kib("VmRSS") };
}
