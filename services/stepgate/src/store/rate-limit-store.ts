import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { BoundedMemoryLimiter } from "./bounded-memory-limiter.ts";
import type { Dependency } from "./dependency.ts";
import { hotKeys } from "./hot-keys.ts";

/** One rate limit: at most `calls` per `perSeconds` seconds for each key, in fixed windows. */
export interface RateCounter {
  /** The limit's name (subject, caller, source): it separates the limits' keys. */
  name: string;
  calls: number;
  perSeconds: number;
}

/** What counting one call found: let through, or refused until `retryAfterMs` (ms) from now. */
export type Counted = { allowed: true } | { allowed: false; retryAfterMs: number };

/** Rate counters shared by the fleet (rate-limiter-flexible over Redis). */
export interface RateLimitStore {
  /**
   * Counts one call for `key` under `rate`. In Redis, shared by every replica; without Redis, while
   * its circuit is open, or when the command fails (rate-limiter-flexible's insurance limiter), in
   * this replica's memory with its share of the calls (`localShare`). Never fails for a store's sake.
   */
  count(rate: RateCounter, key: string): Promise<Counted>;
  /** Gives back a call `count` let through, e.g. when another limit refused the call. */
  giveBack(rate: RateCounter, key: string): Promise<void>;
}

export interface RateLimitStoreOptions {
  /** The Redis connection under the hot store; absent when there is no Redis. */
  redis: Redis | undefined;
  /** Redis's breaker: while it is open, counting is local. Commands do not run through it: each
   * would pay for the breaker's timer, and a limit's counter is not worth a failed call. */
  dependency: Dependency | undefined;
  /** The share (0 to 1) of each limit one replica allows while it counts alone (e.g. 1/replicas). */
  localShare: number;
}

/** Refusals resolve: a limit reached is an answer from Redis, not a failure for its breaker. */
const settle = (consumed: Promise<unknown>): Promise<Counted> =>
  consumed.then(
    () => ({ allowed: true }),
    (rejection: unknown) => {
      if (rejection instanceof RateLimiterRes)
        return { allowed: false, retryAfterMs: rejection.msBeforeNext };
      throw rejection;
    },
  );

export function createRateLimitStore(options: RateLimitStoreOptions): RateLimitStore {
  const redisLimiters = new Map<string, RateLimiterRedis>();
  const localLimiters = new Map<string, BoundedMemoryLimiter>();
  const id = (rate: RateCounter) => `${rate.name}:${rate.calls}:${rate.perSeconds}`;
  const local = (rate: RateCounter) => {
    let limiter = localLimiters.get(id(rate));
    if (!limiter) {
      const points = Math.max(1, Math.ceil(rate.calls * options.localShare));
      // At most maxLocalKeys keys per limit (bounded-memory-limiter.ts): a flood of new keys while
      // Redis is down shares one counter instead of growing the replica's memory.
      limiter = new BoundedMemoryLimiter({ keyPrefix: id(rate), points, duration: rate.perSeconds });
      localLimiters.set(id(rate), limiter);
    }
    return limiter;
  };
  const shared = (redis: Redis, rate: RateCounter) => {
    let limiter = redisLimiters.get(id(rate));
    if (!limiter) {
      limiter = new RateLimiterRedis({
        storeClient: redis,
        keyPrefix: `rate:${id(rate)}`,
        points: rate.calls,
        duration: rate.perSeconds,
        // Once a key has refused a call, this replica refuses it from memory until its window ends:
        // a flood costs Redis nothing. (Not at the last allowed call: that count may be given back.)
        inMemoryBlockOnConsumed: rate.calls + 1,
        // A command that fails (Redis down or slow: ioredis's command timeout) is counted locally.
        insuranceLimiter: local(rate),
        rejectIfRedisNotReady: true,
      });
      redisLimiters.set(id(rate), limiter);
    }
    return limiter;
  };
  // While Redis's circuit is open, count locally at once (no call waits on a store known down).
  const limiterFor = (rate: RateCounter) =>
    options.redis && options.dependency?.available ? shared(options.redis, rate) : local(rate);
  return {
    count: (rate, key) => settle(limiterFor(rate).consume(hotKeys.rateLimit(rate.name, key))),
    async giveBack(rate, key) {
      await limiterFor(rate)
        .reward(hotKeys.rateLimit(rate.name, key), 1)
        .catch(() => {});
    },
  };
}
