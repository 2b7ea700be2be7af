/** One slice of a load run: the calls that ended in it. */
export interface TimelineBucket {
  /** Where the bucket starts, in ms since the load started. */
  startMs: number;
  /** Calls that ended in it as expected. */
  ok: number;
  /** Calls that ended in it with a failure. */
  failed: number;
}

/** Outcomes of calls over time, in fixed buckets. */
export interface FlowTimeline {
  /** The bucket width in ms. */
  bucketMs: number;
  /** Every bucket from 0 to the last call's, in order, empty ones included. */
  buckets: TimelineBucket[];
}

/** A timeline being recorded. */
export interface TimelineRecorder {
  /** Counts one call that ended `atMs` ms after the start. Throws nothing; negative times count at 0. */
  record(atMs: number, ok: boolean): void;
  /** The buckets so far (a copy). */
  snapshot(): FlowTimeline;
}

/** An empty timeline of `bucketMs`-wide buckets (default 250 ms). Throws a RangeError if
 * `bucketMs` is not a positive number. */
export function createTimelineRecorder(bucketMs = 250): TimelineRecorder {
  if (!(bucketMs > 0)) throw new RangeError(`bucketMs must be positive, not ${bucketMs}`);
  const buckets: TimelineBucket[] = [];
  return {
    record(atMs, ok) {
      const index = Math.max(0, Math.floor(atMs / bucketMs));
      for (let i = buckets.length; i <= index; i++) buckets.push({ startMs: i * bucketMs, ok: 0, failed: 0 });
      const bucket = buckets[index] as TimelineBucket;
      if (ok) bucket.ok++;
      else bucket.failed++;
    },
    snapshot: () => ({ bucketMs, buckets: buckets.map((b) => ({ ...b })) }),
  };
}

/**
 * How long after a fault started (`faultStartMs`, ms since the load started) the first failure
 * showed: the end of the first bucket that ends after `faultStartMs` and holds a failure, minus
 * `faultStartMs`; so it is exact to one bucket width and never early. `undefined` if no failure
 * came after it. Throws nothing.
 */
export function timeToDetect(timeline: FlowTimeline, faultStartMs: number): number | undefined {
  for (const b of timeline.buckets) {
    const end = b.startMs + timeline.bucketMs;
    if (end > faultStartMs && b.failed > 0) return end - faultStartMs;
  }
  return undefined;
}

/**
 * How long after a fault ended (`faultEndMs`, ms since the load started) calls went through again:
 * the start of the first bucket that starts at or after `faultEndMs` with calls ending in it and no
 * failure, minus `faultEndMs` (exact to one bucket width). `undefined` if there is none. A bucket
 * with no call at all proves nothing and is skipped. Throws nothing.
 */
export function timeToRecover(timeline: FlowTimeline, faultEndMs: number): number | undefined {
  for (const b of timeline.buckets) {
    if (b.startMs >= faultEndMs && b.failed === 0 && b.ok > 0) return b.startMs - faultEndMs;
  }
  return undefined;
}

/**
 * One character per bucket, for a report line: `.` only successes, `x` only failures, `!` both,
 * ` ` (space) no call ended in it; `|` is inserted before the buckets that hold each of `marksMs`
 * (e.g. a fault's start and end). Throws nothing.
 */
export function timelineStrip(timeline: FlowTimeline, marksMs: readonly number[] = []): string {
  let out = "";
  for (const b of timeline.buckets) {
    for (const mark of marksMs) {
      if (mark >= b.startMs && mark < b.startMs + timeline.bucketMs) out += "|";
    }
    out += b.ok + b.failed === 0 ? " " : b.failed === 0 ? "." : b.ok === 0 ? "x" : "!";
  }
  return out;
}
