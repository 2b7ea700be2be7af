export type { GrantClaims, GrantExpectations } from "@stepgate/grant";
export { GrantError } from "@stepgate/grant";
export type { TlsFiles } from "@stepgate/grpc-bridge";
export { defaultDeadlines } from "./deadlines.ts";
export { newIdempotencyKey, withIdempotencyKey } from "./idempotency-key.ts";
export {
  isLostInTransport,
  isReplicaUnavailable,
  type ResendReason,
  resendReason,
  stepgateReasons,
} from "./replica-retry.ts";
export type { RevocationFeedOptions, RevocationFeedStatus, WhenFeedStale } from "./revocation-watcher.ts";
export { type OutlierDetectionOptions, type RetryOptions, stepgateServiceConfig } from "./service-config.ts";
export { createStepgateClient, type StepgateClient, type StepgateClientOptions } from "./stepgate-client.ts";
