import { setTimeout as sleep } from "node:timers/promises";
import type { NextCall } from "./closed-loop.ts";
import { createPhaseRecorder } from "./phase-recorder.ts";
import type { PhaseSample } from "./worker-messages.ts";

/**
 * Starts calls at `ratePerSecond` on a fixed schedule for `durationMs`, whatever the answers, and
 * times each from its scheduled start: a slow server or a late generator shows up as latency
 * instead of quietly lowering the load (no coordinated omission). Node timers fire at 1 ms
 * granularity at best, so calls due within the same tick leave together and that lag is counted.
 */
export async function runOpenLoop(
  next: NextCall,
  ratePerSecond: number,
  durationMs: number,
): Promise<PhaseSample> {
  const recorder = createPhaseRecorder();
  if (!(ratePerSecond > 0)) return recorder.sample(0);
  const total = Math.max(1, Math.round((ratePerSecond * durationMs) / 1000));
  const intervalMs = 1000 / ratePerSecond;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const launch = (dueAt: number) => {
    const call = next();
    if (call === undefined) {
      recorder.unstarted();
      return;
    }
    const sent = performance.now();
    const p = call().then(
      () => {
        const done = performance.now();
        recorder.success(done - dueAt, done - sent);
      },
      (error: unknown) => recorder.failure(error),
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };
  for (let i = 0; i < total; ) {
    const now = performance.now();
    while (i < total && started + i * intervalMs <= now) {
      launch(started + i * intervalMs);
      i++;
    }
    if (i < total) await sleep(Math.max(0, started + i * intervalMs - performance.now()));
  }
  await Promise.all(inFlight);
  return recorder.sample(performance.now() - started);
}
