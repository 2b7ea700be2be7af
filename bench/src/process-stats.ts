import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

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

/**
 * Resets a process's peak resident memory (VmHWM) to its current RSS (writing 5 to
 * /proc/<pid>/clear_refs, Linux 4.0 on; the process's owner or root). False if that failed.
 */
export function resetPeakMemory(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** PIDs of the processes whose command name (/proc/<pid>/comm) is `name`. */
export function pidsNamed(name: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === name) pids.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return pids;
}

/** CPU seconds the whole machine has spent busy, all cores together (/proc/stat, first line). */
export function machineBusySeconds(): number {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
    return (
      ((user ?? 0) + (nice ?? 0) + (system ?? 0) + (irq ?? 0) + (softirq ?? 0) + (steal ?? 0)) / clockTicks
    );
  } catch {
    return Number.NaN;
  }
}
