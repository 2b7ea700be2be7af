import { type Client, createClient, type Transport } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { callerHeader, FactorService, StepUpService } from "@stepgate/api";
import { createGrantVerifier, type GrantClaims, type GrantExpectations, type Jwk } from "@stepgate/grant";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { type RetryOptions, stepgateServiceConfig } from "./service-config.ts";

export interface StepgateClientOptions {
  /**
   * Where the replicas are, as a gRPC target: `host:port`, `ipv4:10.0.0.1:50051,10.0.0.2:50051`
   * (a static list) or `dns:///stepgate:50051` (every address the name resolves to).
   */
  target: string;
  /** This service's name, sent in the `stepgate-caller` header; grants name it as their audience. */
  caller: string;
  /** Channel credentials. Default: insecure (plaintext), for a trusted network or a mesh. */
  credentials?: grpc.ChannelCredentials;
  /** Deadline for calls that set none. Default 5000 ms. */
  defaultTimeoutMs?: number;
  /** Retries on UNAVAILABLE. */
  retry?: RetryOptions;
  /** Extra grpc-js channel options, applied last (e.g. `grpc.keepalive_time_ms`). */
  channelOptions?: grpc.ChannelOptions;
  /** Offline grant checks: tolerated clock skew in seconds (default 5). */
  clockToleranceSeconds?: number;
  /** Offline grant checks: the clock, in ms since the epoch (default `Date.now`). */
  now?: () => number;
}

export interface StepgateClient {
  /** StepUp, Verify, CheckGrant, EndSession, GetJwks. */
  stepUp: Client<typeof StepUpService>;
  /** EnrollTotp, ConfirmTotp, CreateRecoveryCodes, ListFactors, RemoveFactor. */
  factors: Client<typeof FactorService>;
  /**
   * Verifies a grant offline against the published keys (fetched with GetJwks, cached, and
   * refetched on an unknown key id). The audience defaults to this client's caller name.
   */
  verifyGrant(
    token: string,
    expect: Omit<GrantExpectations, "audience"> & { audience?: string },
  ): Promise<GrantClaims>;
  /** Closes the channel. */
  close(): void;
}

/** A typed Stepgate client over one grpc-js channel that balances across every replica. */
export function createStepgateClient(options: StepgateClientOptions): StepgateClient {
  const channel = new grpc.Channel(options.target, options.credentials ?? grpc.credentials.createInsecure(), {
    "grpc.service_config": stepgateServiceConfig(options.retry),
    "grpc.enable_retries": 1,
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    ...options.channelOptions,
  });
  const transport = withCaller(
    createGrpcJsTransport({ channel, defaultTimeoutMs: options.defaultTimeoutMs ?? 5000 }),
    options.caller,
  );
  const stepUp = createClient(StepUpService, transport);
  const verifier = createGrantVerifier({
    keys: async () => (JSON.parse((await stepUp.getJwks({})).jwksJson) as { keys: Jwk[] }).keys,
    ...(options.clockToleranceSeconds === undefined
      ? {}
      : { clockToleranceSeconds: options.clockToleranceSeconds }),
    ...(options.now === undefined ? {} : { now: options.now }),
  });
  return {
    stepUp,
    factors: createClient(FactorService, transport),
    verifyGrant: (token, expect) =>
      verifier.verify(token, { ...expect, audience: expect.audience ?? options.caller }),
    close: () => channel.close(),
  };
}

/** Adds the caller header to every call. */
function withCaller(inner: Transport, caller: string): Transport {
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const headers = new Headers(header);
      headers.set(callerHeader, caller);
      return inner.unary(method, signal, timeoutMs, headers, input, contextValues);
    },
    stream: (...args) => inner.stream(...args),
  };
}
