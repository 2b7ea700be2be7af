import { readFileSync } from "node:fs";
import { availableParallelism, cpus, release, totalmem } from "node:os";
import { clockTicks } from "./process-stats.ts";

/** What the figures were measured on. */
export interface Machine {
  cpuModel: string;
  /** Logical CPUs this process may use. */
  cores: number;
  memoryBytes: number;
  kernel: string;
  node: string;
  postgres: string;
  redis: string;
  clockTicksPerSecond: number;
  /** When the run started. */
  date: string;
}

export function describeMachine(versions: { postgres: string; redis: string }, startedAt: Date): Machine {
  let cpuModel = cpus()[0]?.model ?? "unknown";
  try {
    cpuModel =
      /^model name\s*:\s*(.*)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1]?.trim() ?? cpuModel;
  } catch {
    // Not Linux: os.cpus() has it.
  }
  return {
    cpuModel,
    cores: availableParallelism(),
    memoryBytes: totalmem(),
    kernel: release(),
    node: process.version,
    postgres: versions.postgres,
    redis: versions.redis,
    clockTicksPerSecond: clockTicks,
    date: startedAt.toISOString(),
  };
}
