/** Retry settings for calls that failed with UNAVAILABLE (gRPC A6 retry policy). */
export interface RetryOptions {
  /** Attempts per call, the first included (grpc `maxAttempts`, capped at 5 by grpc-js). Default 4. */
  maxAttempts?: number;
  /** Backoff before the first retry (grpc `initialBackoff`). Default 100 ms. */
  initialBackoffMs?: number;
  /** Backoff ceiling (grpc `maxBackoff`). Default 2000 ms. */
  maxBackoffMs?: number;
  /** Backoff growth per retry (grpc `backoffMultiplier`). Default 2. */
  backoffMultiplier?: number;
}

const services = ["stepgate.v1.StepUpService", "stepgate.v1.FactorService"];

/**
 * The channel's service config: round_robin over every address the target resolves to, and
 * retries on UNAVAILABLE with exponential backoff, throttled so a failing fleet is not stormed.
 */
export function stepgateServiceConfig(retry: RetryOptions = {}): string {
  const maxAttempts = retry.maxAttempts ?? 4;
  // grpc-js refuses a retry policy of fewer than two attempts: one attempt means no policy.
  if (maxAttempts < 2) {
    return JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });
  }
  return JSON.stringify({
    loadBalancingConfig: [{ round_robin: {} }],
    methodConfig: [
      {
        name: services.map((service) => ({ service })),
        retryPolicy: {
          maxAttempts,
          initialBackoff: `${(retry.initialBackoffMs ?? 100) / 1000}s`,
          maxBackoff: `${(retry.maxBackoffMs ?? 2000) / 1000}s`,
          backoffMultiplier: retry.backoffMultiplier ?? 2,
          retryableStatusCodes: ["UNAVAILABLE"],
        },
      },
    ],
    // Retries stop when more than half the recent calls failed (gRPC A6 throttling).
    retryThrottling: { maxTokens: 20, tokenRatio: 0.2 },
  });
}
