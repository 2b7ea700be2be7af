import { createPhaseRecorder } from "./phase-recorder.ts";
import type { PhaseSample } from "./worker-messages.ts";

/** The next call of a scenario, or undefined when it has no prepared work left. */
export type NextCall = () => (() => Promise<void>) | undefined;

/**
 * Keeps `concurrency` calls in flight for `durationMs`: each lane sends its next call as soon as
 * the previous one ends. Calls started before the end are waited for and counted. With `bucketMs`,
 * the sample also counts successes per bucket of that many ms from the start.
 */
export async function runClosedLoop(
  next: NextCall,
  concurrency: number,
  durationMs: number,
  bucketMs?: number,
): Promise<PhaseSample> {
  const recorder = createPhaseRecorder(bucketMs === undefined ? {} : { bucketMs });
  const started = performance.now();
  const end = started + durationMs;
  const lane = async () => {
    while (performance.now() < end) {
      const call = next();
      if (call === undefined) {
        // Ran dry (Verify with no challenge left): the phase may end early, and says so.
        recorder.unstarted();
        return;
      }
      const sent = performance.now();
      try {
        await call();
        const latency = performance.now() - sent;
        recorder.success(latency, latency);
      } catch (error) {
        recorder.failure(error, performance.now() - sent);
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
  return recorder.sample(performance.now() - started);
}
