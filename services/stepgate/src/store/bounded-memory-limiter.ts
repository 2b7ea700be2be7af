import { RateLimiterMemory, type RateLimiterRes } from "rate-limiter-flexible";

/** Keys one in-memory limit counts apart; past it, new keys share one overflow counter. About
 * 300 bytes each (a record and its timer): 20,000 keys hold about 6 MiB per limit. */
export const maxLocalKeys = 20_000;
/** The key that new keys are counted under while the limit is full. */
export const overflowKey = "_overflow";

type Options = ConstructorParameters<typeof RateLimiterMemory>[0];
type CallOptions = Parameters<RateLimiterMemory["consume"]>[2];

/**
 * rate-limiter-flexible's in-memory limiter, which keeps one record per key until its window ends,
 * holding at most `maxKeys` keys: a flood of distinct keys (sources, subjects) while Redis is down
 * costs a bounded amount of memory. Keys already counted keep their own counter; new keys share
 * the overflow counter until windows end and free room, so the flood is refused, not let through.
 */
export class BoundedMemoryLimiter extends RateLimiterMemory {
  readonly #maxKeys: number;
  readonly #records: Map<string, unknown>;

  constructor(options: Options, maxKeys = maxLocalKeys) {
    super(options);
    this.#maxKeys = maxKeys;
    // The library's storage (rate-limiter-flexible 11, pinned): fail at start if it ever changes.
    const records = (this as unknown as { _memoryStorage?: { _storage?: unknown } })._memoryStorage?._storage;
    if (!(records instanceof Map)) throw new Error("rate-limiter-flexible: in-memory storage not found");
    this.#records = records;
  }

  /** The number of keys counted now (the overflow counter included). */
  get size(): number {
    return this.#records.size;
  }

  #bounded(key: string | number): string | number {
    if (this.#records.size < this.#maxKeys || this.#records.has(this.getKey(key))) return key;
    return overflowKey;
  }

  override consume(key: string | number, points?: number, options?: CallOptions): Promise<RateLimiterRes> {
    return super.consume(this.#bounded(key), points, options);
  }

  override reward(key: string | number, points?: number, options?: CallOptions): Promise<RateLimiterRes> {
    return super.reward(this.#bounded(key), points, options);
  }
}
