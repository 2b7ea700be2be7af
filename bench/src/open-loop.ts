import { setTimeout as sleep } from "node:timers/promises";
import type { NextCall } from "./closed-loop.ts";
import { createPhaseRecorder } from "./phase-recorder.ts";
import type { PhaseSample } from "./worker-messages.ts";

export interface OpenLoopOptions {
  /**
   * Called when the schedule ends (`durationMs` after the start, once every call due has left or
   * been dropped), before the calls in flight are waited for.
   */
  onScheduleEnd?: () => void;
  /**
   * Drop a call, rather than send it, when the generator comes to it more than this many ms after
   * its scheduled start (counted as `launch.dropped`). Without it every call is sent, late ones in a
   * burst; a generator that cannot keep up then falls ever further behind and the burst's calls
   * outlive their deadlines in its own queue. Default: none.
   */
  maxLagMs?: number;
}

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
  options: OpenLoopOptions = {},
): Promise<PhaseSample> {
  const recorder = createPhaseRecorder();
  if (!(ratePerSecond > 0)) {
    options.onScheduleEnd?.();
    return recorder.sample(0);
  }
  const total = Math.max(1, Math.round((ratePerSecond * durationMs) / 1000));
  const intervalMs = 1000 / ratePerSecond;
  const inFlight = new Set<Promise<void>>();
  const started = performance.now();
  const launch = (dueAt: number) => {
    const sent = performance.now();
    if (options.maxLagMs !== undefined && sent - dueAt > options.maxLagMs) {
      recorder.dropped();
      return;
    }
    const call = next();
    if (call === undefined) {
      recorder.unstarted();
      return;
    }
    recorder.launched(sent - dueAt, sent - started);
    const p = call().then(
      () => {
        const done = performance.now();
        recorder.success(done - dueAt, done - sent);
      },
      (error: unknown) => recorder.failure(error, performance.now() - dueAt),
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
  if (options.onScheduleEnd) {
    // The schedule spans the whole duration: the next call would have been due at its end.
    await sleep(Math.max(0, started + durationMs - performance.now()));
    options.onScheduleEnd();
  }
  await Promise.all(inFlight);
  return recorder.sample(performance.now() - started);
}
