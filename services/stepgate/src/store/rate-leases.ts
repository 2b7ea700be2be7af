import { RateLimiterRes } from "rate-limiter-flexible";
import type { Counted, RateCounter } from "./rate-counter.ts";

/**
 * The share of a limit one replica leases at a time: with three replicas, at most 3% of a window's
 * calls sit leased on replicas that may not use them (and so at most 3% over the limit where a
 * window's end falls between a replica's last use of its lease and Redis starting the next).
 */
export const leaseShare = 0.01;
/** Leases one replica keeps per limit; past it, the oldest is dropped (its tokens are not used). */
export const maxLeasedKeys = 20_000;

/** Takes up to `tokens` calls of a key's current window in the shared store, atomically. */
export type TakeTokens = (
  rate: RateCounter,
  key: string,
  tokens: number,
) => Promise<{ granted: number; windowLeftMs: number }>;

/** Calls of one key's window taken from the shared store, spent here without a round trip. */
interface Lease {
  tokens: number;
  /** When the window the tokens belong to ends (Date.now ms). */
  endsAt: number;
  /** Set while the shared store has no more for this window: refused from memory until `endsAt`. */
  spent: boolean;
  /** The refill in flight, so concurrent calls share one round trip. */
  refill: Promise<void> | undefined;
}

/**
 * Fleet-wide limits decided in this replica's memory, from blocks of calls leased from the shared
 * counter ahead of need (`leaseShare` of the limit, at least 1): a call spends a leased token with
 * no round trip; the next block is taken in the background once half of one is left; a key whose
 * window is used up fleet-wide is refused from memory until the window ends. Tokens count in the
 * shared store when leased, so the fleet never takes more than a window's calls; tokens leased but
 * unused when the window ends are dropped. `take` failing rejects `count` (the caller counts
 * locally then).
 */
export class RateLeases {
  readonly #take: TakeTokens;
  readonly #now: () => number;
  readonly #leases = new Map<string, Lease>();

  constructor(take: TakeTokens, now: () => number = Date.now) {
    this.#take = take;
    this.#now = now;
  }

  /**
   * `count` when memory alone decides: a leased token spent, or a refusal while the window is used
   * up fleet-wide; undefined when the lease must be refilled first (then call `count`).
   */
  countNow(rate: RateCounter, key: string): Counted | undefined {
    const lease = this.#lease(rate, key);
    if (this.#spendOne(rate, key, lease)) return allowed;
    if (lease.spent && lease.tokens <= 0 && this.#now() < lease.endsAt) {
      return { allowed: false, retryAfterMs: Math.max(1, lease.endsAt - this.#now()) };
    }
    return undefined;
  }

  /** Spends one call of `key` under `rate`; refused with the ms until its window ends. */
  async count(rate: RateCounter, key: string): Promise<Counted> {
    const lease = this.#lease(rate, key);
    if (this.#spendOne(rate, key, lease)) return allowed;
    if (!lease.spent) await this.#refill(rate, key, lease);
    // Tokens just taken for this call are spent even if their window ended meanwhile (a lease
    // taken in a window's last millisecond): the shared counter counted them already.
    if (lease.tokens > 0) {
      lease.tokens -= 1;
      return allowed;
    }
    return { allowed: false, retryAfterMs: Math.max(1, lease.endsAt - this.#now()) };
  }

  /** Gives a spent call back to the lease it came from (nothing, once its window ended). */
  giveBack(rate: RateCounter, key: string): void {
    const lease = this.#leases.get(leaseId(rate, key));
    if (lease && this.#now() < lease.endsAt) lease.tokens += 1;
  }

  /** The leases held now, for tests and gauges. */
  get size(): number {
    return this.#leases.size;
  }

  #lease(rate: RateCounter, key: string): Lease {
    const id = leaseId(rate, key);
    let lease = this.#leases.get(id);
    if (lease && this.#now() >= lease.endsAt && !lease.refill) {
      // A new window: what was left of the old one is not this window's to spend.
      this.#leases.delete(id);
      lease = undefined;
    }
    if (!lease) {
      if (this.#leases.size >= maxLeasedKeys) this.#leases.delete(this.#leases.keys().next().value as string);
      lease = { tokens: 0, endsAt: 0, spent: false, refill: undefined };
      this.#leases.set(id, lease);
    }
    return lease;
  }

  /** Takes a token if the lease has one in a window still open, topping the lease up when low. */
  #spendOne(rate: RateCounter, key: string, lease: Lease): boolean {
    if (lease.tokens <= 0 || this.#now() >= lease.endsAt) return false;
    lease.tokens -= 1;
    if (!lease.spent && lease.tokens * 2 < blockOf(rate)) void this.#refill(rate, key, lease).catch(() => {});
    return true;
  }

  #refill(rate: RateCounter, key: string, lease: Lease): Promise<void> {
    lease.refill ??= this.#take(rate, key, blockOf(rate))
      .then(({ granted, windowLeftMs }) => {
        const endsAt = this.#now() + windowLeftMs;
        // Tokens of an earlier window are dropped with it; a refill in the same window adds up
        // (the same window's end, read twice, differs by the round trips' latency only).
        const sameWindow = Math.abs(endsAt - lease.endsAt) < Math.min(50, rate.perSeconds * 500);
        if (!sameWindow || this.#now() >= lease.endsAt) lease.tokens = 0;
        lease.tokens += granted;
        lease.endsAt = endsAt;
        lease.spent = granted < blockOf(rate);
      })
      .finally(() => {
        lease.refill = undefined;
      });
    return lease.refill;
  }
}

const allowed: Counted = { allowed: true };

const leaseId = (rate: RateCounter, key: string) => `${rate.name}:${rate.calls}:${rate.perSeconds}:${key}`;

/** The calls leased at a time for `rate`. */
export const blockOf = (rate: RateCounter) => Math.max(1, Math.floor(rate.calls * leaseShare));

/**
 * What taking `tokens` from a rate-limiter-flexible counter found: all of them, or (when the
 * counter went past its limit) those that were still left before, with the ms its window has left.
 */
export function tokensTaken(
  taken: Promise<RateLimiterRes>,
  rate: RateCounter,
  tokens: number,
): Promise<{ granted: number; windowLeftMs: number }> {
  return taken.then(
    (res) => ({ granted: tokens, windowLeftMs: res.msBeforeNext }),
    (rejection: unknown) => {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const before = rejection.consumedPoints - tokens;
      return {
        granted: Math.max(0, Math.min(tokens, rate.calls - before)),
        windowLeftMs: rejection.msBeforeNext,
      };
    },
  );
}
