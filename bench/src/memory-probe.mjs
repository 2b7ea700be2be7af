// Preloaded into a replica by bench/src/memory.ts (`node --import`): every 200 ms it writes the
// replica's process.memoryUsage() and each V8 heap space's committed size (bytes), and its GC pauses (ms) to STEPGATE_MEMORY_PROBE_DIR/<pid>.json, so the
// measurement can split RSS into V8 heap and external buffers. Never loaded in production. Plain
// JavaScript: a .ts file would load the TypeScript stripper into the replica it measures.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics } from "node:v8";

const dir = process.env.STEPGATE_MEMORY_PROBE_DIR;
if (dir) {
  const file = join(dir, `${process.pid}.json`);
  // Time the main thread spent paused in GC since start (ms), to compare V8 heap flags by cost.
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  }).observe({ entryTypes: ["gc"] });
  const write = () => {
    // Written aside then renamed, so a reader never sees half a file.
    // Committed bytes per V8 heap space too: new_space is the young generation's semi-spaces.
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]),
    );
    writeFileSync(`${file}.tmp`, JSON.stringify({ ...process.memoryUsage(), spaces, gcMs }));
    renameSync(`${file}.tmp`, file);
  };
  setInterval(write, 200).unref();
  write();
}
