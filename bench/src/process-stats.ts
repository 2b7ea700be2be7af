import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { clockTicks } from "@stepgate/testkit/process-stats";

// CPU and memory of one process are in testkit, so tests print the same figures.
export { clockTicks, cpuSeconds, residentMemory } from "@stepgate/testkit/process-stats";

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
