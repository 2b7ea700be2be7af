import type { Interceptor } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { AdminService, FactorService, RevocationFeedService, StepUpService } from "@stepgate/api";
import { file_google_rpc_error_details } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { Health as HealthService } from "@stepgate/api/gen/grpc/health/v1/health_pb";
import { BenchService } from "@stepgate/api/gen/stepgate/bench/v1/bench_service_pb";
import { addService } from "@stepgate/grpc-bridge";
import type { Config } from "../config/config.ts";
import { describeError } from "../log/describe-error.ts";
import type { Logger } from "../log/logger.ts";
import { adminHandlers } from "../rpc/admin-handlers.ts";
import { createCallAccounting } from "../rpc/call-accounting.ts";
import { identifyCallers } from "../rpc/caller.ts";
import { factorHandlers } from "../rpc/factor-handlers.ts";
import { type GuardHooks, guard } from "../rpc/guard.ts";
import { identifyOperators } from "../rpc/operator.ts";
import { revocationFeedHandlers } from "../rpc/revocation-feed-handlers.ts";
import { stepUpHandlers } from "../rpc/step-up-handlers.ts";
import { shapeTraffic } from "../rpc/traffic-shaping.ts";
import { createRequestCheck, validateRequests } from "../rpc/validate-requests.ts";
import type { Composed } from "./compose.ts";
import { type ConnectionThrottle, createConnectionThrottle } from "./connection-throttle.ts";
import { injectFaults } from "./fault-injection.ts";
import { addHealth, type Health } from "./health.ts";
import { holdStatusInterceptor } from "./hold-status-fault.ts";
import { boundPendingRequests } from "./pending-requests.ts";
import { addReflection } from "./reflection.ts";

// Every Stepgate request is small; a larger one is refused before it is parsed (RESOURCE_EXHAUSTED).
const maxMessageBytes = 64 * 1024;

export interface StepgateServer {
  server: grpc.Server;
  health: Health;
  /** Pauses connections whose calls keep being refused; `watch` it once the ports are bound. */
  throttle: ConnectionThrottle;
}

/**
 * The gRPC server: both services, health and reflection, logging one line per call with the status
 * the client got (rpc/call-accounting.ts). Test faults (server/fault-injection.ts,
 * server/hold-status-fault.ts) are installed only with STEPGATE_FAULT_INJECTION=1, the no-op bench service only with STEPGATE_BENCH=1.
 * Every call of every service runs through one list of interceptors (`callInterceptors`): the
 * replica's name leaves in the `stepgate-replica` trailer, and a failed call sends no response
 * headers before its status, so clients can still retry it on another replica.
 */
export function createServer(config: Config, service: Composed, logger: Logger): StepgateServer {
  const c = config.connections;
  const accounting = createCallAccounting({ logger, metrics: service.stepUpService.metrics });
  const throttle = createConnectionThrottle({
    refusals: c.throttleRefusals,
    windowMs: 100,
    pauseMs: c.throttlePauseMs,
    maxPauseMs: c.throttleMaxPauseMs,
    onPause: (ms) => service.stepUpService.metrics.connectionPaused(ms),
  });
  const faults = config.faultInjection
    ? [holdStatusInterceptor({ replicaId: config.replicaId, markers: service.stores.markers, logger })]
    : [];
  const pending = boundPendingRequests({ timeoutMs: c.requestTimeoutMs, maxPending: c.maxPendingRequests });
  const server = new grpc.Server({
    // Accounting first, so it also sees the statuses grpc-js sends by itself (deadline, size,
    // decoding); a held status (fault) reaches it when it is sent.
    interceptors: [accounting.interceptor, throttle.interceptor, pending, ...faults],
    "grpc.max_receive_message_length": maxMessageBytes,
    "grpc.max_send_message_length": 1024 * 1024,
    ...(c.maxConnectionAgeMs > 0 ? { "grpc.max_connection_age_ms": c.maxConnectionAgeMs } : {}),
    "grpc.max_connection_age_grace_ms": c.maxConnectionAgeGraceMs,
    "grpc.keepalive_time_ms": c.keepaliveTimeMs,
    "grpc.keepalive_timeout_ms": c.keepaliveTimeoutMs,
  });
  accounting.acceptUnknownMethods(server);
  const serve = { interceptors: callInterceptors(config, service, accounting.handlerHooks) };
  addService(server, StepUpService, stepUpHandlers(service.stepUpService), serve);
  addService(server, FactorService, factorHandlers(service.factorService), serve);
  // Operators only: named by their own interceptor, never as a calling service (rpc/operator.ts).
  addService(server, AdminService, adminHandlers(service.adminService(() => health.status === "SERVING")), {
    interceptors: adminInterceptors(config, service, accounting.handlerHooks),
  });
  addService(
    server,
    RevocationFeedService,
    revocationFeedHandlers({
      ...service.revocationFeed,
      identifyCaller: service.identifyCaller,
      checkRequest: createRequestCheck([RevocationFeedService]),
      replicaId: config.replicaId,
      maxWatchers: config.revocationFeed.maxWatchers,
    }),
    // A stream's unexpected failure reaches the client as INTERNAL only: the log says what it was.
    { onError: (error) => logger.error({ error: describeError(error) }, "revocation feed stream failed") },
  );
  if (config.bench) {
    addService(server, BenchService, { noop: async (req) => ({ payload: req.payload }) }, serve);
  }
  const health = addHealth(server, [
    StepUpService.typeName,
    FactorService.typeName,
    RevocationFeedService.typeName,
    AdminService.typeName,
  ]);
  // The error detail types too, so grpcurl and buf curl print ErrorInfo and BadRequest as JSON.
  addReflection(
    server,
    [StepUpService, FactorService, RevocationFeedService, AdminService, HealthService],
    [file_google_rpc_error_details],
  );
  return { server, health, throttle };
}

/**
 * What runs around every handler of every service, outermost first: the guard (statuses, the
 * replica trailer, call reports), so a refused call is accounted and mapped like any other; the
 * caller's name, which shaping counts calls by; traffic shaping; the request's rules from the
 * protos; and, only with STEPGATE_FAULT_INJECTION=1, the test faults.
 */
function callInterceptors(
  config: Config,
  service: Composed,
  hooks: Omit<GuardHooks, "replicaId">,
): Interceptor[] {
  const faults = { unavailable: config.faultUnavailable };
  return [
    guard({ replicaId: config.replicaId, ...hooks }),
    identifyCallers(service.identifyCaller),
    shapeTraffic(service.traffic),
    validateRequests([StepUpService, FactorService]),
    ...(config.faultInjection ? [injectFaults(service.stores.markers, faults)] : []),
  ];
}

/**
 * AdminService's interceptors: those of every other call, with the operator named and their scope
 * checked where the calling service is named, so a call that no operator of the policy may make
 * runs nothing and costs no admission slot.
 */
function adminInterceptors(
  config: Config,
  service: Composed,
  hooks: Omit<GuardHooks, "replicaId">,
): Interceptor[] {
  return [
    guard({ replicaId: config.replicaId, ...hooks }),
    identifyOperators(service.operators.identify, service.operators.policy),
    shapeTraffic(service.traffic),
    validateRequests([AdminService]),
  ];
}
