/** The stores the service depends on. */
export type DependencyName = "postgresql" | "redis";

/**
 * A dependency could not serve a call: its circuit is open (known down: DEPENDENCY_UNAVAILABLE),
 * or this call to it failed or timed out (STORE_UNAVAILABLE). Either way nothing was decided, so
 * the caller may retry, ideally on another replica, after `retryAfterMs` (ms).
 */
export class DependencyUnavailableError extends Error {
  override name = "DependencyUnavailableError";
  /** A store, or the identity provider whose published keys prove subjects. */
  readonly dependency: DependencyName | "identity-provider";
  readonly reason: "DEPENDENCY_UNAVAILABLE" | "STORE_UNAVAILABLE";
  readonly retryAfterMs: number;

  constructor(
    dependency: DependencyName | "identity-provider",
    reason: "DEPENDENCY_UNAVAILABLE" | "STORE_UNAVAILABLE",
    retryAfterMs: number,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} is unavailable`, options);
    this.dependency = dependency;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}
