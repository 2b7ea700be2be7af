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
 * The keys are tracked here, beside the library's own records (which live as long: `duration` from
 * a key's first call), through its public API only.
 */
export class BoundedMemoryLimiter extends RateLimiterMemory {
  readonly #maxKeys: number;
  readonly #windowMs: number;
  /** Each key counted now, with when its window ends (ms since the epoch). */
  readonly #windows = new Map<string, number>();

  constructor(options: Options, maxKeys = maxLocalKeys) {
    super(options);
    this.#maxKeys = maxKeys;
    this.#windowMs = (options?.duration ?? 1) * 1000;
  }

  /** The number of keys counted now (the overflow counter included). */
  get size(): number {
    this.#forgetEnded(Date.now());
    return this.#windows.size;
  }

  #forgetEnded(now: number): void {
    for (const [key, endsAt] of this.#windows) if (endsAt <= now) this.#windows.delete(key);
  }

  /** `key` while it has a window or there is room for one; else the overflow counter's key. */
  #bounded(key: string | number): string | number {
    const now = Date.now();
    const counted = String(key);
    const endsAt = this.#windows.get(counted);
    if (endsAt !== undefined && endsAt > now) return key;
    // Full: windows that ended free their room first (a sweep only when full).
    if (this.#windows.size >= this.#maxKeys) this.#forgetEnded(now);
    const own = this.#windows.size < this.#maxKeys;
    const chosen = own ? counted : overflowKey;
    const chosenEnds = this.#windows.get(chosen);
    if (chosenEnds === undefined || chosenEnds <= now) this.#windows.set(chosen, now + this.#windowMs);
    return own ? key : overflowKey;
  }

  override consume(key: string | number, points?: number, options?: CallOptions): Promise<RateLimiterRes> {
    return super.consume(this.#bounded(key), points, options);
  }

  override reward(key: string | number, points?: number, options?: CallOptions): Promise<RateLimiterRes> {
    return super.reward(this.#bounded(key), points, options);
  }
}
