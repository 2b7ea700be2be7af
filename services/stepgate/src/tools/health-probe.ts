import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { Health, HealthCheckResponse_ServingStatus } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";

// A container health check: exits 0 only if grpc.health.v1.Health/Check says SERVING.
// Usage: node services/stepgate/src/tools/health-probe.ts [host:port] (default 127.0.0.1:$STEPGATE_PORT or 50051)
const target = process.argv[2] ?? `127.0.0.1:${process.env.STEPGATE_PORT ?? 50051}`;
const channel = new grpc.Channel(target, grpc.credentials.createInsecure(), {});
try {
  const health = createClient(Health, createGrpcJsTransport({ channel, defaultTimeoutMs: 2000 }));
  const { status } = await health.check({ service: "" });
  process.exitCode = status === HealthCheckResponse_ServingStatus.SERVING ? 0 : 1;
} catch {
  process.exitCode = 1;
} finally {
  channel.close();
}
