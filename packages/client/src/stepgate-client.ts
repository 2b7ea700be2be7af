import { type Client, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { FactorService, RevocationFeedService, StepUpService } from "@stepgate/api";
import {
  createGrantVerifier,
  createRevocationSet,
  type GrantClaims,
  type GrantExpectations,
  type Jwk,
} from "@stepgate/grant";
import {
  createGrpcJsTransport,
  mutualTlsChannelCredentials,
  type TlsFiles,
  watchTlsFiles,
} from "@stepgate/grpc-bridge";
import { checkOnline } from "./check-online.ts";
import { clientInterceptors } from "./client-interceptors.ts";
import { defaultDeadlines } from "./deadlines.ts";
import { ResendThrottle } from "./resend-throttle.ts";
import {
  type RevocationFeedOptions,
  type RevocationFeedStatus,
  watchRevocations,
} from "./revocation-watcher.ts";
import { type OutlierDetectionOptions, type RetryOptions, stepgateServiceConfig } from "./service-config.ts";

export interface StepgateClientOptions {
  /**
   * Where the replicas are, as a gRPC target: `host:port`, `ipv4:10.0.0.1:50051,10.0.0.2:50051`
   * (a static list) or `dns:///stepgate:50051` (every address the name resolves to).
   */
  target: string;
  /**
   * This service's name, sent in the `stepgate-caller` header; grants name it as their audience.
   * Under mutual TLS it must be the caller the replicas' policy maps this client's certificate to.
   */
  caller: string;
  /**
   * Mutual TLS from PEM files, reloaded when they change (`reloadMs`, default 10000 ms): this
   * service's certificate and key, whose SPIFFE ID or DNS name the replicas' policy maps to
   * `caller`, and the CA bundle the replicas' certificates chain to. The replicas' name is checked
   * against the target's host. Ignored when `credentials` is given.
   */
  tls?: TlsFiles;
  /** Channel credentials. Default: from `tls`, else insecure (plaintext, for insecure development mode only). */
  credentials?: grpc.ChannelCredentials;
  /**
   * Deadlines in ms by method name (e.g. `{ Verify: 2000 }`) for calls that set none, 5000 ms for
   * a method not listed; see `defaultDeadlines`. A deadline spans every attempt of a call.
   */
  deadlines?: Record<string, number>;
  /** Retries on UNAVAILABLE. */
  retry?: RetryOptions;
  /** Ejection of failing replicas. */
  outlierDetection?: OutlierDetectionOptions;
  /**
   * Further rounds of the channel's retries (resends) for a call that a replica answered it could
   * not serve (STORE_UNAVAILABLE, DEPENDENCY_UNAVAILABLE) or that was lost with its connection
   * (UNAVAILABLE or INTERNAL with no replica's answer, e.g. "Connection dropped" after the response
   * headers, which grpc-js never retries), within the call's deadline. The client fills an empty
   * `idempotencyKey` of the request once per call, so a resend is recognised by the replicas.
   * Default 2; 0 turns resending off.
   */
  replicaRetryRounds?: number;
  /** Pause before the first resend, doubled for each later one, with jitter (x0.5 to x1). Default 25 ms. */
  replicaRetryBackoffMs?: number;
  /**
   * Throttling of resends across all calls of this client, as grpc `retryThrottling` (A6): a call
   * worth resending takes a token, an OK call puts back `tokenRatio`, resends stop while half of
   * `maxTokens` or less is left. Default `{ maxTokens: 100, tokenRatio: 0.1 }`: a burst of 49
   * resends (a replica dying with its calls in flight), then about one per ten OK calls.
   */
  replicaRetryThrottle?: { maxTokens?: number; tokenRatio?: number };
  /**
   * Pause before reconnecting to a replica whose connection failed, growing x1.6 per failed attempt
   * (grpc-js `grpc.initial_reconnect_backoff_ms`, at least 1; grpc-js has no
   * `grpc.min_reconnect_backoff_ms`). Default 250 ms (grpc-js's own: 1000 ms).
   */
  reconnectInitialBackoffMs?: number;
  /**
   * The longest pause between reconnect attempts, with 20% jitter (grpc-js
   * `grpc.max_reconnect_backoff_ms`, at least 1). Bounds how long a restarted replica waits for
   * its first call once it serves. Default 1000 ms (grpc-js's own: 120000 ms).
   */
  reconnectMaxBackoffMs?: number;
  /** Keepalive pings on idle connections (`grpc.keepalive_time_ms`). Default 30000 ms; the server allows one per 10 s. */
  keepaliveTimeMs?: number;
  /** A ping unanswered this long closes the connection (`grpc.keepalive_timeout_ms`). Default 10000 ms. */
  keepaliveTimeoutMs?: number;
  /** Extra grpc-js channel options, applied last. */
  channelOptions?: grpc.ChannelOptions;
  /** Offline grant checks: tolerated clock skew in seconds (default 5). */
  clockToleranceSeconds?: number;
  /** Offline grant checks: the clock, in ms since the epoch (default `Date.now`). */
  now?: () => number;
  /**
   * Offline grant checks: the revocation feed `verifyGrant` subscribes to, on by default, with
   * the rule for a stale feed (default: check online with CheckGrant once it lags over 5 s).
   */
  revocationFeed?: RevocationFeedOptions;
}

export interface StepgateClient {
  /** StepUp, Verify, CheckGrant, EndSession, GetJwks. */
  stepUp: Client<typeof StepUpService>;
  /** EnrollTotp, ConfirmTotp, Begin/FinishPasskeyEnrollment, CreateRecoveryCodes, ListFactors, RemoveFactor. */
  factors: Client<typeof FactorService>;
  /**
   * Verifies a grant offline against the published keys (fetched with GetJwks, cached, and
   * refetched on an unknown key id). The audience defaults to this client's caller name. A grant
   * bound to a transaction (`txn` claim) passes only with `transaction`, the details about to be
   * executed; it rejects with GrantError (GRANT_INVALID, GRANT_EXPIRED, GRANT_MISMATCH,
   * GRANT_SINGLE_USE, GRANT_TRANSACTION_MISMATCH, GRANT_REVOKED), or an Error when the keys cannot
   * be fetched. With the revocation feed (the default) a grant it names is GRANT_REVOKED; the first
   * call waits up to `syncTimeoutMs` for the feed, and while the feed is stale its `whenStale` rule
   * applies: CheckGrant's refusals come back as GrantError too (GRANT_REVOKED, GRANT_CONSUMED...),
   * "fail-closed" rejects with Error("revocation feed stale").
   */
  verifyGrant(
    token: string,
    expect: Omit<GrantExpectations, "audience"> & { audience?: string },
  ): Promise<GrantClaims>;
  /** The revocation feed's state (lag, cursor, staleness); undefined when it is off. */
  revocationFeed(): RevocationFeedStatus | undefined;
  /** Closes the channel and ends the feed's stream. */
  close(): void;
}

/** A typed Stepgate client over one grpc-js channel that balances across every replica. */
export function createStepgateClient(options: StepgateClientOptions): StepgateClient {
  const tlsFiles = options.credentials === undefined && options.tls ? watchTlsFiles(options.tls) : undefined;
  const credentials =
    options.credentials ??
    (tlsFiles ? mutualTlsChannelCredentials(tlsFiles) : grpc.credentials.createInsecure());
  const channel = new grpc.Channel(options.target, credentials, {
    "grpc.service_config": stepgateServiceConfig(options.retry, options.outlierDetection),
    // The service config is ours; a DNS TXT record must not replace it.
    "grpc.service_config_disable_resolution": 1,
    "grpc.enable_retries": 1,
    "grpc.keepalive_time_ms": options.keepaliveTimeMs ?? 30_000,
    "grpc.keepalive_timeout_ms": options.keepaliveTimeoutMs ?? 10_000,
    "grpc.initial_reconnect_backoff_ms": options.reconnectInitialBackoffMs ?? 250,
    "grpc.max_reconnect_backoff_ms": options.reconnectMaxBackoffMs ?? 1000,
    ...options.channelOptions,
  });
  const deadlines = { ...defaultDeadlines, ...options.deadlines };
  const interceptors = clientInterceptors({
    caller: options.caller,
    replicaRetry: {
      rounds: options.replicaRetryRounds ?? 2,
      backoffMs: options.replicaRetryBackoffMs ?? 25,
      throttle: new ResendThrottle(
        options.replicaRetryThrottle?.maxTokens ?? 100,
        options.replicaRetryThrottle?.tokenRatio ?? 0.1,
      ),
    },
  });
  const transport = createGrpcJsTransport({
    channel,
    // A method not listed gets 5000 ms: no Stepgate call waits forever.
    // A stream (the revocation feed) stays open: no deadline unless one is listed.
    defaultTimeoutMs: (method) =>
      deadlines[method.name] ?? (method.methodKind === "server_streaming" ? undefined : 5000),
    interceptors,
  });
  const stepUp = createClient(StepUpService, transport);
  const now = options.now ?? Date.now;
  const feedOptions = options.revocationFeed ?? {};
  const revocations = createRevocationSet(now);
  const watcher =
    feedOptions.enabled === false
      ? undefined
      : watchRevocations(
          createClient(RevocationFeedService, transport),
          options.caller,
          revocations,
          feedOptions,
        );
  const verifier = createGrantVerifier({
    ...(watcher === undefined ? {} : { revocations }),
    keys: async () => (JSON.parse((await stepUp.getJwks({})).jwksJson) as { keys: Jwk[] }).keys,
    ...(options.clockToleranceSeconds === undefined
      ? {}
      : { clockToleranceSeconds: options.clockToleranceSeconds }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return {
    stepUp,
    factors: createClient(FactorService, transport),
    async verifyGrant(token, expect) {
      const expectation = { ...expect, audience: expect.audience ?? options.caller };
      if (watcher === undefined) return verifier.verify(token, expectation);
      await watcher.synced();
      const claims = await verifier.verify(token, expectation);
      if (!watcher.stale()) return claims;
      const rule = feedOptions.whenStale ?? "check-online";
      if (rule === "fail-closed") throw new Error("revocation feed stale");
      if (rule === "check-online") await checkOnline(stepUp, token, expectation);
      return claims;
    },
    revocationFeed: () => watcher?.status(),
    close: () => {
      watcher?.stop();
      channel.close();
      tlsFiles?.close();
    },
  };
}
