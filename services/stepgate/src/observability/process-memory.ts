import type { Meter } from "@opentelemetry/api";

/** process.memoryUsage() fields by the `kind` attribute they are published under. */
const kinds = {
  rss: "rss",
  heap_total: "heapTotal",
  heap_used: "heapUsed",
  external: "external",
  array_buffers: "arrayBuffers",
} as const;

/**
 * Publishes `stepgate.process.memory{kind}` in bytes: rss (resident set), heap_total and heap_used
 * (V8's heap, committed and used), external (memory outside the heap held by JavaScript objects,
 * array_buffers included) and array_buffers. Read once per collection (one process.memoryUsage()
 * call, microseconds), so it costs nothing per request.
 */
export function observeProcessMemory(meter: Meter): void {
  meter
    .createObservableGauge("stepgate.process.memory", {
      description:
        "Memory of this replica's process by kind (rss, heap_total, heap_used, external, array_buffers)",
      unit: "By",
    })
    .addCallback((result) => {
      const usage = process.memoryUsage();
      for (const [kind, field] of Object.entries(kinds)) result.observe(usage[field], { kind });
    });
}
