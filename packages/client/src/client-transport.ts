import { Code, ConnectError, type Transport } from "@connectrpc/connect";
import { type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { callerHeader } from "@stepgate/api";
import { withIdempotencyKey } from "./idempotency-key.ts";
import { type ReplicaRetryPolicy, withReplicaRetry } from "./replica-retry.ts";

/** What `withClientDefaults` adds to every call. */
export interface ClientDefaults {
  /** Sent in the `stepgate-caller` header. */
  caller: string;
  /** Deadline in ms by method name, for calls that set none (5000 ms for a method not listed). */
  deadlines: Record<string, number>;
  /** How calls are sent again (rounds, pause, throttle); `onResend` is set per call. */
  replicaRetry: Omit<ReplicaRetryPolicy, "onResend">;
}

const tracer = trace.getTracer("@stepgate/client");

/**
 * Wraps `inner` so every call carries the caller header and the method's default deadline where it
 * sets none, gets an idempotency key if its request has an empty one (`withIdempotencyKey`, once,
 * before the first attempt), is sent again when a replica could not serve it or it was lost with
 * its connection (`withReplicaRetry`), and runs (resends included) in a `stepgate.client/<Method>`
 * span with one `stepgate.client.resend` event per resend.
 */
export function withClientDefaults(inner: Transport, defaults: ClientDefaults): Transport {
  return {
    unary(method, signal, timeoutMs, header, input, contextValues) {
      const headers = new Headers(header);
      headers.set(callerHeader, defaults.caller);
      const timeout = timeoutMs ?? defaults.deadlines[method.name] ?? 5000;
      const request = withIdempotencyKey(method.input, input);
      const attributes = {
        "rpc.system": "grpc",
        "rpc.service": method.parent.typeName,
        "rpc.method": method.name,
      };
      return tracer.startActiveSpan(`stepgate.client/${method.name}`, { attributes }, async (span) => {
        const policy = { ...defaults.replicaRetry, onResend: recordResend(span) };
        try {
          return await withReplicaRetry(
            policy,
            timeout,
            (left) => inner.unary(method, signal, left, headers, request, contextValues),
            signal,
          );
        } catch (error) {
          span.setStatus({
            code: SpanStatusCode.ERROR,
            message: Code[ConnectError.from(error).code] ?? "error",
          });
          throw error;
        } finally {
          span.end();
        }
      });
    },
    stream: (...args) => inner.stream(...args),
  };
}

function recordResend(span: Span): NonNullable<ReplicaRetryPolicy["onResend"]> {
  return (reason, round) =>
    span.addEvent("stepgate.client.resend", {
      "stepgate.resend.reason": reason,
      "stepgate.resend.round": round,
    });
}
