import type { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { BoundedMemoryLimiter } from "./bounded-memory-limiter.ts";
import type { Dependency } from "./dependency.ts";
import { hotKeys } from "./hot-keys.ts";
import type { Counted, RateCounter } from "./rate-counter.ts";
import { blockOf, RateLeases, tokensTaken } from "./rate-leases.ts";

export type { Counted, RateCounter } from "./rate-counter.ts";

/** Rate counters shared by the fleet (rate-limiter-flexible over Redis, leased in blocks). */
export interface RateLimitStore {
  /**
   * Counts one call for `key` under `rate`. Against Redis's counter, shared by every replica, from
   * blocks of calls this replica leased ahead (store/rate-leases.ts: no round trip per call, at most
   * `leaseShare` of a limit per replica leased and not yet used); without Redis, while its circuit
   * is open, or when a lease cannot be taken, in this replica's memory with its share of the calls
   * (`localShare`). Never fails for a store's sake.
   */
  count(rate: RateCounter, key: string): Promise<Counted>;
  /**
   * `count` without a promise when this replica's memory decides it (a leased limit with tokens,
   * or one used up fleet-wide); undefined when it needs `count`. Nothing is counted then.
   */
  countNow(rate: RateCounter, key: string): Counted | undefined;
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

/** One limit's name and numbers: its counters' keys (a changed limit counts afresh). */
const limitId = (rate: RateCounter) => `${rate.name}:${rate.calls}:${rate.perSeconds}`;

/** A limit large enough to lease: a block of at least `minLeaseBlock` calls (rate-leases.ts). */
const minLeaseBlock = 4;
const isLeased = (rate: RateCounter) => blockOf(rate) >= minLeaseBlock;

type RedisLimiterOptions = Partial<ConstructorParameters<typeof RateLimiterRedis>[0]>;

/** The rate-limiter-flexible counter of `rate` in Redis, made once per limit in `made`. */
function redisLimiter(
  redis: Redis,
  rate: RateCounter,
  made: Map<string, RateLimiterRedis>,
  extra: RedisLimiterOptions,
): RateLimiterRedis {
  let limiter = made.get(limitId(rate));
  if (!limiter) {
    limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `rate:${limitId(rate)}`,
      points: rate.calls,
      duration: rate.perSeconds,
      rejectIfRedisNotReady: true,
      ...extra,
    });
    made.set(limitId(rate), limiter);
  }
  return limiter;
}

export function createRateLimitStore(options: RateLimitStoreOptions): RateLimitStore {
  const perCallLimiters = new Map<string, RateLimiterRedis>();
  const leasedLimiters = new Map<string, RateLimiterRedis>();
  const localLimiters = new Map<string, BoundedMemoryLimiter>();
  const id = limitId;
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
  // Per call (small limits, where a lease would be a call or two): one Redis count per call.
  const perCall = (redis: Redis, rate: RateCounter) =>
    redisLimiter(redis, rate, perCallLimiters, {
      // Once a key has refused a call, this replica refuses it from memory until its window ends:
      // a flood costs Redis nothing. (Not at the last allowed call: that count may be given back.)
      inMemoryBlockOnConsumed: rate.calls + 1,
      // A command that fails (Redis down or slow: ioredis's command timeout) is counted locally.
      insuranceLimiter: local(rate),
    });
  // Leased (rate-leases.ts): its own refusals are from memory, its failures counted locally here.
  const leased = (redis: Redis, rate: RateCounter) => redisLimiter(redis, rate, leasedLimiters, {});
  const redis = options.redis;
  const leases = new RateLeases((rate, key, tokens) =>
    tokensTaken(
      leased(redis as Redis, rate).consume(hotKeys.rateLimit(rate.name, key), tokens),
      rate,
      tokens,
    ),
  );
  const countLocally = (rate: RateCounter, key: string) =>
    settle(local(rate).consume(hotKeys.rateLimit(rate.name, key)));
  // While Redis's circuit is open, count locally at once (no call waits on a store known down).
  const viaRedis = () => redis !== undefined && options.dependency?.available === true;
  return {
    countNow: (rate, key) => (redis && viaRedis() && isLeased(rate) ? leases.countNow(rate, key) : undefined),
    count(rate, key) {
      if (!redis || !viaRedis()) return countLocally(rate, key);
      if (isLeased(rate)) return leases.count(rate, key).catch(() => countLocally(rate, key));
      return settle(perCall(redis, rate).consume(hotKeys.rateLimit(rate.name, key)));
    },
    async giveBack(rate, key) {
      if (redis && viaRedis() && isLeased(rate)) return leases.giveBack(rate, key);
      const limiter = redis && viaRedis() ? perCall(redis, rate) : local(rate);
      await limiter.reward(hotKeys.rateLimit(rate.name, key), 1).catch(() => {});
    },
  };
}
