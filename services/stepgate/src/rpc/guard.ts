import { Code, ConnectError, type Interceptor } from "@connectrpc/connect";
import { replicaTrailer } from "@stepgate/api";
import { handlerContextOf } from "@stepgate/grpc-bridge";
import { toRpcError } from "./errors.ts";
import { rpcName } from "./method-names.ts";

/**
 * The trailer that names the replica that answered, on every call, OK or not, for debugging and
 * balance checks. A trailer, not a response header: gRPC clients commit a call once response
 * headers arrive and never retry it after that, so a failing replica must send its status (and
 * trailers) first and nothing before it. Connect clients read it with `onTrailer` (or
 * `ConnectError.metadata` on failure), grpc-js clients from the status's metadata.
 */
export { replicaTrailer };

export interface GuardHooks {
  replicaId: string;
  /** Called as each handler starts, inside the call's trace context. */
  onCallStart?(): void;
  /**
   * Called once per handler run, inside the call's trace context, with the status its outcome maps
   * to (0 for OK). Not necessarily the call's status: the deadline or a cancel can still end the
   * call otherwise (call accounting, rpc/call-accounting.ts, logs what the client got).
   * `error` is set for failures that were not Stepgate's own (they reach the client as INTERNAL).
   */
  onCallEnd(info: { rpc: string; code: number; durationMs: number; error?: unknown }): void;
}

/**
 * The outermost interceptor of every call: domain and store errors leave as proper gRPC statuses,
 * every call names the replica that served it in the `stepgate-replica` trailer, and every
 * handler run is reported once. A call whose signal is already aborted (its deadline passed, or
 * the client cancelled it) goes no further: it ends with that status (DEADLINE_EXCEEDED or
 * CANCELLED).
 */
export function guard(hooks: GuardHooks): Interceptor {
  return (next) => async (req) => {
    const ctx = handlerContextOf(req);
    const rpc = rpcName(req.method);
    ctx.responseTrailer.set(replicaTrailer, hooks.replicaId);
    hooks.onCallStart?.();
    const started = performance.now();
    const end = (code: number, error?: unknown) =>
      hooks.onCallEnd({ rpc, code, durationMs: performance.now() - started, ...(error ? { error } : {}) });
    try {
      // Nobody waits for the answer any more: starting the work would only load the stores.
      if (ctx.signal.aborted) throw ConnectError.from(ctx.signal.reason, Code.Canceled);
      const res = await next(req);
      end(0);
      return res;
    } catch (error) {
      const mapped = toRpcError(error);
      if (mapped instanceof ConnectError) end(mapped.code);
      else end(13, mapped); // INTERNAL: the bridge hides the message from the client.
      throw mapped;
    }
  };
}
