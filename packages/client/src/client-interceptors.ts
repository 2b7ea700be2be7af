import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { SpanStatusCode, trace } from "@opentelemetry/api";
import { callerHeader } from "@stepgate/api";
import { callDeadlineKey } from "@stepgate/grpc-bridge";
import { withIdempotencyKey } from "./idempotency-key.ts";
import { type ReplicaRetryPolicy, withReplicaRetry } from "./replica-retry.ts";

/** What `clientInterceptors` adds to every call. */
export interface ClientDefaults {
  /** Sent in the `stepgate-caller` header. */
  caller: string;
  /** How calls are sent again (rounds, pause, throttle); `onResend` is set per call. */
  replicaRetry: Omit<ReplicaRetryPolicy, "onResend">;
}

const tracer = trace.getTracer("@stepgate/client");

/**
 * The client's interceptors, outermost first, for the grpc-bridge transport (which sets each call's
 * deadline, `callDeadlineKey`, before they run): every call carries the caller header, gets an
 * idempotency key if its request has an empty one (`withIdempotencyKey`, once, before the first
 * attempt), runs (resends included) in a `stepgate.client/<Method>` span, and is sent again when
 * a replica could not serve it or it was lost with its connection (`withReplicaRetry`, one
 * `stepgate.client.resend` span event per resend).
 */
export function clientInterceptors(defaults: ClientDefaults): Interceptor[] {
  return [
    sendCaller(defaults.caller),
    fillIdempotencyKey,
    traceCall,
    resendToReplicas(defaults.replicaRetry),
  ];
}

function sendCaller(caller: string): Interceptor {
  return (next) => (req) => {
    req.header.set(callerHeader, caller);
    return next(req);
  };
}

// The caller's message is never changed: a filled key goes on a copy. Unary calls only.
const fillIdempotencyKey: Interceptor = (next) => (req) =>
  req.stream ? next(req) : next({ ...req, message: withIdempotencyKey(req.method.input, req.message) });

const traceCall: Interceptor = (next) => (req) => {
  const attributes = {
    "rpc.system": "grpc",
    "rpc.service": req.service.typeName,
    "rpc.method": req.method.name,
  };
  return tracer.startActiveSpan(`stepgate.client/${req.method.name}`, { attributes }, async (span) => {
    try {
      return await next(req);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: Code[ConnectError.from(error).code] ?? "error" });
      throw error;
    } finally {
      span.end();
    }
  });
};

function resendToReplicas(replicaRetry: ClientDefaults["replicaRetry"]): Interceptor {
  return (next) => (req) => {
    const deadline = req.contextValues.get(callDeadlineKey);
    if (deadline === undefined) return next(req);
    // The call's span (traceCall): each resend is an event on it.
    const span = trace.getActiveSpan();
    const policy: ReplicaRetryPolicy = {
      ...replicaRetry,
      onResend: (reason, round) =>
        span?.addEvent("stepgate.client.resend", {
          "stepgate.resend.reason": reason,
          "stepgate.resend.round": round,
        }),
    };
    return withReplicaRetry(policy, deadline - Date.now(), () => next(req), req.signal);
  };
}
