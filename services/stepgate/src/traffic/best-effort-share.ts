// Best-effort calls always keep a couple of slots: starving them entirely helps nobody.
const minSlots = 2;

/** How many slots normal- and low-priority calls may hold together, adapted to the event loop's load. */
export interface BestEffortShare {
  /** Slots now (at least 2, or the limit when that is lower). */
  readonly slots: number;
  /** Takes one event-loop utilization sample (0 to 1). */
  sample(utilization: number): void;
}

export interface BestEffortShareOptions {
  /** The event loop may be busy this share of the time (0 to 1) before best-effort calls give way. */
  busyAtMost: number;
  /** The most slots the share may reach (the admission limit now). */
  max: () => number;
}

/**
 * Keeps the event loop's utilization under `busyAtMost` by limiting best-effort calls (AIMD on the
 * loop's load smoothed over about 300 ms: 30% fewer slots per sample above it, 25% more per
 * sample well below it, never fewer than 2). A
 * replica's one event loop serves every call's callbacks in arrival order, so a critical call's
 * latency is only as good as the loop's headroom: this keeps that headroom for critical and high
 * calls while best-effort traffic would take it all.
 */
export function createBestEffortShare(options: BestEffortShareOptions): BestEffortShare {
  let slots = options.max();
  // Smoothed over about 300 ms: a pause for garbage collection or compilation is not a flood.
  let load = 0;
  return {
    get slots() {
      return Math.max(1, Math.min(options.max(), Math.floor(slots)));
    },
    sample(utilization) {
      const max = options.max();
      load += (utilization - load) * 0.3;
      if (load > options.busyAtMost) slots = Math.max(minSlots, Math.min(slots, max) * 0.7);
      else if (load < options.busyAtMost - 0.1) slots = Math.min(max, slots + Math.max(1, slots * 0.25));
    },
  };
}
