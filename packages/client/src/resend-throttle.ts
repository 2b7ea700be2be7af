/**
 * The token bucket of gRPC's retry throttling (A6), for the calls the client sends again itself:
 * it starts full, a call that failed in a way worth resending takes one token, an OK call puts
 * back `tokenRatio`, and resends stop while half the bucket or less is left. A burst (a replica
 * dying with its calls in flight) is resent; a fleet that keeps failing is not stormed.
 */
export class ResendThrottle {
  readonly #maxTokens: number;
  readonly #tokenRatio: number;
  #tokens: number;

  /** `maxTokens` > 0 and `tokenRatio` > 0, as in a gRPC `retryThrottling` config. */
  constructor(maxTokens: number, tokenRatio: number) {
    if (!(maxTokens > 0 && tokenRatio > 0)) {
      throw new RangeError("resend throttle: maxTokens and tokenRatio must be positive");
    }
    this.#maxTokens = maxTokens;
    this.#tokenRatio = tokenRatio;
    this.#tokens = maxTokens;
  }

  /** A call answered OK. */
  succeeded(): void {
    this.#tokens = Math.min(this.#maxTokens, this.#tokens + this.#tokenRatio);
  }

  /** A call failed in a way worth sending it again. */
  failed(): void {
    this.#tokens = Math.max(0, this.#tokens - 1);
  }

  /** Whether a failed call may be sent again now. */
  allowsResend(): boolean {
    return this.#tokens > this.#maxTokens / 2;
  }
}
