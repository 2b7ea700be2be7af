// Preloaded into a replica by bench/src/memory.ts (`node --import`): every 200 ms it writes the
// replica's process.memoryUsage() and each V8 heap space's committed size (bytes), its GC pauses (ms) and the bytes it allocated on the V8 heap to STEPGATE_MEMORY_PROBE_DIR/<pid>.json, so the
// measurement can split RSS into V8 heap and external buffers. Never loaded in production. Plain
// JavaScript: a .ts file would load the TypeScript stripper into the replica it measures.
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { PerformanceObserver } from "node:perf_hooks";
import { GCProfiler, getHeapSpaceStatistics, getHeapStatistics } from "node:v8";

const dir = process.env.STEPGATE_MEMORY_PROBE_DIR;
if (dir) {
  const file = join(dir, `${process.pid}.json`);
  // Time the main thread spent paused in GC since start (ms), to compare V8 heap flags by cost.
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs += entry.duration;
  }).observe({ entryTypes: ["gc"] });
  // Bytes allocated since start: each GC's heap before it less the heap after the previous one,
  // plus what was allocated since the last GC (GCProfiler reports a batch of GCs when stopped).
  let allocatedBefore = 0;
  let usedAfterLastGc = getHeapStatistics().used_heap_size;
  let profiler = new GCProfiler();
  profiler.start();
  const allocatedBytes = () => {
    for (const gc of profiler.stop()?.statistics ?? []) {
      allocatedBefore += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - usedAfterLastGc);
      usedAfterLastGc = gc.afterGC.heapStatistics.usedHeapSize;
    }
    profiler = new GCProfiler();
    profiler.start();
    return allocatedBefore + Math.max(0, getHeapStatistics().used_heap_size - usedAfterLastGc);
  };
  const write = () => {
    // Written aside then renamed, so a reader never sees half a file.
    // Committed bytes per V8 heap space too: new_space is the young generation's semi-spaces.
    const spaces = Object.fromEntries(
      getHeapSpaceStatistics().map((s) => [s.space_name, s.physical_space_size]),
    );
    writeFileSync(
      `${file}.tmp`,
      JSON.stringify({ ...process.memoryUsage(), spaces, gcMs, allocatedBytes: allocatedBytes() }),
    );
    renameSync(`${file}.tmp`, file);
  };
  setInterval(write, 200).unref();
  // STEPGATE_MEMORY_PROBE_SAMPLE_ALLOCATIONS=<file>: V8's sampling heap profiler over every
  // allocation, collected or not, written to <file> on SIGUSR2 (where the garbage per call comes from).
  const sampleTo = process.env.STEPGATE_MEMORY_PROBE_SAMPLE_ALLOCATIONS;
  if (sampleTo) {
    const { Session } = await import("node:inspector/promises");
    const session = new Session();
    session.connect();
    await session.post("HeapProfiler.startSampling", {
      samplingInterval: 4096,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true,
    });
    process.on("SIGUSR2", async () => {
      const { profile } = await session.post("HeapProfiler.stopSampling");
      writeFileSync(sampleTo, JSON.stringify(profile));
    });
  }
  write();
}
