/** Retry settings for calls that failed with UNAVAILABLE (gRPC A6 retry policy). */
export interface RetryOptions {
  /** Attempts per call, the first included (grpc `maxAttempts`, capped at 5 by grpc-js). Default 4; 1 disables retries. */
  maxAttempts?: number;
  /** Backoff before the first retry (grpc `initialBackoff`). Default 100 ms. */
  initialBackoffMs?: number;
  /** Backoff ceiling (grpc `maxBackoff`). Default 2000 ms. */
  maxBackoffMs?: number;
  /** Backoff growth per retry (grpc `backoffMultiplier`). Default 2. */
  backoffMultiplier?: number;
  /** Retry throttling bucket (grpc `retryThrottling.maxTokens`); retries stop below half. Default 20. */
  throttleMaxTokens?: number;
  /** Tokens a success puts back (grpc `retryThrottling.tokenRatio`); a failure takes 1. Default 0.5. */
  throttleTokenRatio?: number;
}

/** Ejection of replicas that keep failing (gRPC A50 outlier detection, failure-percentage mode). */
export interface OutlierDetectionOptions {
  /** Turn it off. Default false. */
  disabled?: boolean;
  /** How often replicas' failure rates are evaluated (grpc `interval`). Default 5000 ms. */
  intervalMs?: number;
  /** First ejection length, growing with repeated ejections (grpc `base_ejection_time`). Default 15000 ms. */
  baseEjectionMs?: number;
  /** Longest ejection (grpc `max_ejection_time`). Default 120000 ms. */
  maxEjectionMs?: number;
  /** At most this share of replicas is ejected at once (grpc `max_ejection_percent`). Default 50. */
  maxEjectionPercent?: number;
  /** A replica failing this percentage of its calls in an interval is ejected (grpc `threshold`). Default 50. */
  failurePercent?: number;
  /** Calls a replica must have had in the interval to be judged (grpc `request_volume`). Default 20. */
  minimumRequests?: number;
  /** Replicas needed before any is judged (grpc `minimum_hosts`). Default 3. */
  minimumHosts?: number;
}

const services = ["stepgate.v1.StepUpService", "stepgate.v1.FactorService"];

const duration = (ms: number) => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });

function loadBalancing(outliers: OutlierDetectionOptions) {
  const roundRobin = { round_robin: {} };
  if (outliers.disabled) return [roundRobin];
  return [
    {
      outlier_detection: {
        interval: duration(outliers.intervalMs ?? 5000),
        base_ejection_time: duration(outliers.baseEjectionMs ?? 15_000),
        max_ejection_time: duration(outliers.maxEjectionMs ?? 120_000),
        max_ejection_percent: outliers.maxEjectionPercent ?? 50,
        failure_percentage_ejection: {
          threshold: outliers.failurePercent ?? 50,
          enforcement_percentage: 100,
          minimum_hosts: outliers.minimumHosts ?? 3,
          request_volume: outliers.minimumRequests ?? 20,
        },
        child_policy: [roundRobin],
      },
    },
  ];
}

/**
 * The channel's service config: round_robin over every address the target resolves to, under
 * outlier detection, and retries on UNAVAILABLE with exponential backoff, throttled so a failing
 * fleet is not stormed.
 */
export function stepgateServiceConfig(
  retry: RetryOptions = {},
  outliers: OutlierDetectionOptions = {},
): string {
  const maxAttempts = retry.maxAttempts ?? 4;
  const loadBalancingConfig = loadBalancing(outliers);
  // grpc-js refuses a retry policy of fewer than two attempts: one attempt means no policy.
  if (maxAttempts < 2) return JSON.stringify({ loadBalancingConfig });
  return JSON.stringify({
    loadBalancingConfig,
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
    // Retries stop while more calls fail than the bucket refills (gRPC A6 throttling).
    retryThrottling: {
      maxTokens: retry.throttleMaxTokens ?? 20,
      tokenRatio: retry.throttleTokenRatio ?? 0.5,
    },
  });
}
