import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcJsTransport, mutualTlsChannelCredentials, watchTlsFiles } from "@stepgate/grpc-bridge";

// A container health check: exits 0 only if grpc.health.v1.Health/Check says SERVING (readiness).
// With --answering it exits 0 for any answer, NOT_SERVING included (liveness: the process is alive
// and its event loop answers; a store outage must not restart it).
// Usage: node services/stepgate/src/tools/health-probe.ts [--answering] [host:port]
// (default 127.0.0.1:$STEPGATE_PORT or 50051)
// Under mutual TLS (STEPGATE_TLS_* set) it presents the replica's own certificate, which must be
// valid for client authentication and chain to the client CA bundle (as SPIFFE X.509-SVIDs do),
// and trusts that bundle for the server; STEPGATE_PROBE_SERVER_NAME overrides the checked name.
const env = process.env;
const args = process.argv.slice(2);
const answering = args.includes("--answering");
const target = args.find((a) => !a.startsWith("--")) ?? `127.0.0.1:${env.STEPGATE_PORT ?? 50051}`;
const tls =
  env.STEPGATE_TLS_CERT_FILE && env.STEPGATE_TLS_KEY_FILE && env.STEPGATE_TLS_CLIENT_CA_FILE
    ? watchTlsFiles({
        certFile: env.STEPGATE_TLS_CERT_FILE,
        keyFile: env.STEPGATE_TLS_KEY_FILE,
        caFile: env.STEPGATE_TLS_CLIENT_CA_FILE,
      })
    : undefined;
const channel = new grpc.Channel(
  target,
  tls ? mutualTlsChannelCredentials(tls) : grpc.credentials.createInsecure(),
  env.STEPGATE_PROBE_SERVER_NAME ? { "grpc.ssl_target_name_override": env.STEPGATE_PROBE_SERVER_NAME } : {},
);
try {
  const health = createClient(Health, createGrpcJsTransport({ channel, defaultTimeoutMs: 2000 }));
  const { status } = await health.check({ service: "" });
  process.exitCode = answering || status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1;
} catch {
  process.exitCode = 1;
} finally {
  channel.close();
  tls?.close();
}
