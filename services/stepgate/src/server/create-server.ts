import * as grpc from "@grpc/grpc-js";
import { FactorService, StepUpService } from "@stepgate/api";
import { file_google_rpc_error_details } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { Health as HealthService } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { BenchService } from "@stepgate/api/gen/stepgate/bench/v1/bench_service_pb";
import { addService } from "@stepgate/grpc-bridge";
import type { Config } from "../config/config.ts";
import { describeError } from "../log/describe-error.ts";
import type { Logger } from "../log/logger.ts";
import { factorHandlers } from "../rpc/factor-handlers.ts";
import { guard } from "../rpc/guard.ts";
import { stepUpHandlers } from "../rpc/step-up-handlers.ts";
import type { Composed } from "./compose.ts";
import { withFaults } from "./fault-injection.ts";
import { addHealth, type Health } from "./health.ts";
import { addReflection } from "./reflection.ts";

// Every Stepgate request is small; a larger one is refused before it is parsed (RESOURCE_EXHAUSTED).
const maxMessageBytes = 64 * 1024;

export interface StepgateServer {
  server: grpc.Server;
  health: Health;
}

/**
 * The gRPC server: both services, health and reflection, logging one line per call. Test faults
 * are installed only with STEPGATE_FAULT_INJECTION=1, the no-op bench service only with STEPGATE_BENCH=1.
 */
export function createServer(config: Config, service: Composed, logger: Logger): StepgateServer {
  const c = config.connections;
  const server = new grpc.Server({
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": 1024 * 1024,
    ...(c.maxConnectionAgeMs > 0 ? { "grpc.max_connection_age_ms": c.maxConnectionAgeMs } : {}),
    "grpc.max_connection_age_grace_ms": c.maxConnectionAgeGraceMs,
    "grpc.keepalive_time_ms": c.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": c.keepaliveTimeoutMs,
  });
  const hooks = {
    replicaId: config.replicaId,
    onCallEnd({
      rpc,
      code,
      durationMs,
      error,
    }: {
      rpc: string;
      code: number;
      durationMs: number;
      error?: unknown;
    }) {
      const status = grpc.status[code] ?? String(code);
      const fields = { rpc, status, ms: Math.round(durationMs * 10) / 10 };
      if (error !== undefined) logger.error({ ...fields, error: describeError(error) }, "call failed");
      else logger.info(fields, "call");
      if (code !== 0)
        service.stepUpService.metrics.rpcError({ "rpc.method": rpc, "rpc.grpc.status_code": code });
    },
  };
  const stepUp = stepUpHandlers(service.stepUpService);
  const stepUpServed = config.faultInjection ? withFaults(stepUp, service.stores.markers) : stepUp;
  addService(server, StepUpService, guard(StepUpService, stepUpServed, hooks));
  addService(server, FactorService, guard(FactorService, factorHandlers(service.factorService), hooks));
  if (config.bench) {
    addService(
      server,
      BenchService,
      guard(BenchService, { noop: async (req) => ({ payload: req.payload }) }, hooks),
    );
  }
  const health = addHealth(server, [StepUpService.typeName, FactorService.typeName]);
  // The error detail types too, so grpcurl and buf curl print ErrorInfo and BadRequest as JSON.
  addReflection(server, [StepUpService, FactorService, HealthService], [file_google_rpc_error_details]);
  return { server, health };
}
