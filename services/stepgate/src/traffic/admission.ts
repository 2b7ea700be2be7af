import { admissionRank, type Priority, priorityOfRank, rankCount } from "../domain/priority.ts";
import type { ConcurrencyLimit } from "./gradient-limit.ts";

/** Why admission refused a call: no room to wait, no time left to finish, or a saturated replica. */
export type ShedReason = "queue_full" | "deadline" | "overloaded";

/**
 * A call admission control refused before it started; nothing of it ran. A plain value, not an
 * Error: under a flood most calls end here, and capturing a stack for each is measurable.
 */
export interface Shed {
  admitted: false;
  reason: ShedReason;
  priority: Priority;
  /** When trying again may succeed, in ms (here or on another replica). */
  retryAfterMs: number;
}

/** A started call: `done` when its work ends (any outcome), so its slot goes to the next. */
export interface Ticket {
  admitted: true;
  done(): void;
}

/** One call asking to start. */
export interface AdmissionRequest {
  /** Its place in line (domain/priority.ts `admissionRank`), 0 first. */
  rank: number;
  /** The calling service: waiting calls of one rank are taken from each caller in turn. */
  caller: string;
  /** When the answer is due, on the `now` clock (ms); absent when the call has no deadline. */
  deadline?: number;
  /** The call's signal: a call cancelled while it waits leaves the queue (rejected with the signal's reason). */
  signal?: AbortSignal;
}

/** What the admission gauges show. */
export interface AdmissionSnapshot {
  /** Calls allowed in flight now. */
  limit: number;
  inFlight: number;
  /** Slots normal and low calls may hold together now. */
  bestEffortSlots: number;
  /** Calls waiting, by priority. */
  queued: Record<Priority, number>;
}

export interface AdmissionOptions {
  /** The concurrency limit, adapting to latency (traffic/gradient-limit.ts). */
  limit: ConcurrencyLimit;
  /** Calls that may wait for a slot, all priorities together. */
  maxQueued: number;
  /** The longest a critical call waits for a slot, in ms; lower priorities wait less (see waitBudgetMs). */
  maxWaitMs: number;
  /** A monotonic clock in ms (default performance.now). */
  now?: () => number;
  /** True while the event loop is saturated: low-priority calls then never wait. */
  saturated?: () => boolean;
  /**
   * Slots normal- and low-priority calls may hold together while critical or high calls are about
   * (one arrived within the last second), so those keep room in the event loop
   * (traffic/best-effort-share.ts adapts it). Default: all of them. With no such call about,
   * best-effort calls may use every slot: the room is kept only for traffic that needs it.
   */
  bestEffortSlots?: () => number;
  /** Latency is fed to the limit once per window of at least this many ms (default 100)... */
  windowMs?: number;
  /** ...and at least this many calls (default 10). */
  windowCalls?: number;
}

/**
 * Admission control for one replica: at most `limit` calls run at once; the rest wait in one queue
 * per rank, taken in rank order and, within a rank, from each caller in turn so one caller's surge
 * cannot starve another. When the queue is full the lowest-ranked waiting call is shed for a higher
 * one, and within a rank the newest call of the caller with the longest line for another caller's
 * (a flood makes room for the others' few); a call is shed rather than started when its deadline
 * cannot be met. `admit` answers with a
 * Ticket or a Shed, at once when it decides at once (a free slot, a shed on arrival: no promise for
 * most calls), else through a promise that rejects only when the call's signal aborts while it waits.
 */
export interface Admission {
  admit(request: AdmissionRequest): Ticket | Shed | Promise<Ticket | Shed>;
  snapshot(): AdmissionSnapshot;
}

interface Waiter extends AdmissionRequest {
  /** Arrival order: the newest of the lowest rank is shed first. */
  seq: number;
  /** Settles the waiter's `admit`: with a ticket once it starts, or with why it was shed. */
  answer: (decision: Ticket | Shed) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const firstBestEffortRank = admissionRank("normal", true);
// Best-effort calls give way for this long (ms) after a critical or high call arrived.
const priorityCallsAboutMs = 1000;
/** Normal and low priority: they give way to critical and high in the event loop, not only in line. */
const isBestEffort = (rank: number) => rank >= firstBestEffortRank;

/** Best-effort calls that may wait for room while the loop holds them back: a burst, not a flood. */
const bestEffortBacklog = (slots: number) => Math.min(1000, 2 * slots + 8);

/** How long a call of `rank` may wait, in ms: the full budget for critical, half for each step down. */
function waitBudgetMs(rank: number, maxWaitMs: number): number {
  return maxWaitMs / 2 ** Math.floor(rank / 2);
}

export function createAdmission(options: AdmissionOptions): Admission {
  const now = options.now ?? (() => performance.now());
  const saturated = options.saturated ?? (() => false);
  const shareOfBestEffort = options.bestEffortSlots ?? (() => Number.POSITIVE_INFINITY);
  // When a critical or high call last arrived (on the `now` clock).
  let priorityCallAt = Number.NEGATIVE_INFINITY;
  const bestEffortSlots = () =>
    now() - priorityCallAt < priorityCallsAboutMs ? shareOfBestEffort() : Number.POSITIVE_INFINITY;
  const windowMs = options.windowMs ?? 100;
  const windowCalls = options.windowCalls ?? 10;
  // One queue per rank; within a rank, a FIFO per caller, visited in turn (Map order rotates).
  const queues: Map<string, Waiter[]>[] = Array.from({ length: rankCount }, () => new Map());
  let queued = 0;
  let inFlight = 0;
  let bestEffortInFlight = 0;
  let bestEffortQueued = 0;
  // Calls running per caller: a caller with none running or waiting keeps a turn even when low
  // calls are shed on arrival.
  const runningByCaller = new Map<string, number>();
  let arrivals = 0;
  // Expected work time of one call (ms), for deadlines and retry hints.
  let serviceMs = 5;
  const window = { started: now(), calls: 0, totalMs: 0, maxInFlight: 0 };

  const retryAfterMs = () =>
    Math.round(Math.min(2000, Math.max(50, (serviceMs * (queued + 1)) / options.limit.limit)));
  const shed = (reason: ShedReason, rank: number): Shed =>
    ({ admitted: false, reason, priority: priorityOfRank(rank), retryAfterMs: retryAfterMs() }) as const;

  const observe = (latencyMs: number) => {
    serviceMs += (latencyMs - serviceMs) * 0.1;
    window.calls += 1;
    window.totalMs += latencyMs;
    const t = now();
    if (t - window.started >= windowMs && window.calls >= windowCalls) {
      options.limit.update(window.totalMs / window.calls, window.maxInFlight);
      Object.assign(window, { started: t, calls: 0, totalMs: 0, maxInFlight: inFlight });
    }
  };

  const start = (waiter: Pick<Waiter, "answer" | "rank" | "caller">) => {
    const bestEffort = isBestEffort(waiter.rank);
    inFlight += 1;
    runningByCaller.set(waiter.caller, (runningByCaller.get(waiter.caller) ?? 0) + 1);
    if (bestEffort) bestEffortInFlight += 1;
    window.maxInFlight = Math.max(window.maxInFlight, inFlight);
    const started = now();
    let ended = false;
    waiter.answer({
      admitted: true,
      done() {
        if (ended) return;
        ended = true;
        inFlight -= 1;
        const running = (runningByCaller.get(waiter.caller) ?? 1) - 1;
        if (running > 0) runningByCaller.set(waiter.caller, running);
        else runningByCaller.delete(waiter.caller);
        if (bestEffort) bestEffortInFlight -= 1;
        observe(now() - started);
        drain();
      },
    });
  };

  const remove = (waiter: Waiter) => {
    const line = queues[waiter.rank]?.get(waiter.caller);
    const at = line?.indexOf(waiter) ?? -1;
    if (!line || at < 0) return false;
    line.splice(at, 1);
    if (line.length === 0) queues[waiter.rank]?.delete(waiter.caller);
    queued -= 1;
    if (isBestEffort(waiter.rank)) bestEffortQueued -= 1;
    clearTimeout(waiter.timer);
    return true;
  };

  const next = (): Waiter | undefined => {
    const bestEffortRoom = bestEffortInFlight < bestEffortSlots();
    for (const [rank, queue] of queues.entries()) {
      // Ranks are in order: past here only best-effort calls wait, and they have no room.
      if (!bestEffortRoom && isBestEffort(rank)) return undefined;
      for (const [caller, line] of queue) {
        const waiter = line[0];
        if (!waiter) continue;
        // The caller goes to the back of its rank's rotation.
        queue.delete(caller);
        if (line.length > 1) queue.set(caller, line);
        line.shift();
        queued -= 1;
        if (isBestEffort(rank)) bestEffortQueued -= 1;
        clearTimeout(waiter.timer);
        return waiter;
      }
    }
    return undefined;
  };

  const lowest = (ranks: (rank: number) => boolean = () => true): Waiter | undefined => {
    for (let rank = queues.length - 1; rank >= 0; rank--) {
      if (!ranks(rank)) continue;
      let newest: Waiter | undefined;
      for (const line of queues[rank]?.values() ?? []) {
        const last = line.at(-1);
        if (last && (!newest || last.seq > newest.seq)) newest = last;
      }
      if (newest) return newest;
    }
    return undefined;
  };

  /**
   * Who leaves the line for `request` when the line is full: the newest waiter of a lower rank; in
   * its own rank, the newest of a caller with a longer line than its own (so a flood's calls make
   * room for another caller's few); otherwise nobody (the request is shed).
   */
  const victimFor = (request: AdmissionRequest, ranks: (rank: number) => boolean): Waiter | undefined => {
    const victim = lowest(ranks);
    if (victim && victim.rank > request.rank) return victim;
    const queue = queues[request.rank];
    if (!queue || !ranks(request.rank)) return undefined;
    const own = queue.get(request.caller)?.length ?? 0;
    let longest: Waiter[] | undefined;
    for (const line of queue.values()) if (!longest || line.length > longest.length) longest = line;
    return longest && longest.length > own + 1 ? longest.at(-1) : undefined;
  };

  const cannotFinish = (request: AdmissionRequest) =>
    request.deadline !== undefined && request.deadline - now() < serviceMs;

  function drain() {
    while (inFlight < options.limit.limit) {
      const waiter = next();
      if (!waiter) return;
      if (cannotFinish(waiter)) waiter.answer(shed("deadline", waiter.rank));
      else start(waiter);
    }
  }

  const enqueue = (request: AdmissionRequest) =>
    new Promise<Ticket | Shed>((resolve, reject) => {
      arrivals += 1;
      const waiter: Waiter = { ...request, seq: arrivals, answer: resolve, timer: undefined };
      let waitMs = waitBudgetMs(request.rank, options.maxWaitMs);
      if (request.deadline !== undefined) waitMs = Math.min(waitMs, request.deadline - now() - serviceMs);
      waiter.timer = setTimeout(
        () => {
          if (remove(waiter)) waiter.answer(shed("deadline", waiter.rank));
        },
        Math.max(0, waitMs),
      );
      // Nobody waits for a cancelled call's answer: its place goes to the next.
      const signal = request.signal;
      signal?.addEventListener(
        "abort",
        () => {
          if (remove(waiter)) reject(signal.reason);
        },
        { once: true },
      );
      const queue = queues[request.rank] as Map<string, Waiter[]>;
      const line = queue.get(request.caller);
      if (line) line.push(waiter);
      else queue.set(request.caller, [waiter]);
      queued += 1;
      if (isBestEffort(request.rank)) bestEffortQueued += 1;
    });

  return {
    admit(request) {
      if (cannotFinish(request)) return shed("deadline", request.rank);
      if (!isBestEffort(request.rank)) priorityCallAt = now();
      const room = !isBestEffort(request.rank) || bestEffortInFlight < bestEffortSlots();
      if (inFlight < options.limit.limit && queued === 0 && room) {
        let ticket: Ticket | Shed | undefined;
        const answer = (decision: Ticket | Shed) => {
          ticket = decision;
        };
        start({ answer, rank: request.rank, caller: request.caller });
        return ticket as Ticket;
      }
      // A saturated loop cannot finish more than it runs: low priority does not wait for it.
      // (A caller with nothing running or waiting still gets its one turn: a flood does not shut
      // every other caller out.)
      const idleCaller = !runningByCaller.has(request.caller) && !queues[request.rank]?.has(request.caller);
      if (priorityOfRank(request.rank) === "low" && saturated() && !idleCaller) {
        return shed("overloaded", request.rank);
      }
      // While the loop holds best-effort calls back, a burst may wait, a flood is shed on arrival:
      // waiting calls cost memory and timers, and shedding many at their deadline stalls the loop.
      if (!room && bestEffortQueued >= bestEffortBacklog(bestEffortSlots())) {
        const victim = victimFor(request, isBestEffort);
        if (!victim) return shed("overloaded", request.rank);
        remove(victim);
        victim.answer(shed("overloaded", victim.rank));
      } else if (queued >= options.maxQueued) {
        const victim = victimFor(request, () => true);
        if (!victim) return shed("queue_full", request.rank);
        remove(victim);
        victim.answer(shed("queue_full", victim.rank));
      }
      const ticket = enqueue(request);
      drain();
      return ticket;
    },
    snapshot() {
      const counts: Record<Priority, number> = { critical: 0, high: 0, normal: 0, low: 0 };
      queues.forEach((queue, rank) => {
        for (const line of queue.values()) counts[priorityOfRank(rank)] += line.length;
      });
      return {
        limit: options.limit.limit,
        inFlight,
        bestEffortSlots: Math.min(options.limit.limit, bestEffortSlots()),
        queued: counts,
      };
    },
  };
}
