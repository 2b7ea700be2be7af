import type { DescService } from "@bufbuild/protobuf";
import { ConnectError, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { toRpcError } from "./errors.ts";

/** The response header that names the replica that answered, for debugging and balance checks. */
export const replicaHeader = "stepgate-replica";

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
 * Wraps every handler so domain and store errors leave as proper gRPC statuses, every response
 * names the replica that served it, and every handler run is reported once.
 */
export function guard<S extends DescService>(
  service: S,
  impl: ServiceImpl<S>,
  hooks: GuardHooks,
): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  for (const method of service.methods) {
    const fn = (impl as Record<string, (...a: unknown[]) => Promise<unknown>>)[method.localName];
    if (!fn) continue;
    const rpc = `${service.typeName}/${method.name}`;
    wrapped[method.localName] = async (...args: unknown[]) => {
      (args[1] as HandlerContext).responseHeader.set(replicaHeader, hooks.replicaId);
      hooks.onCallStart?.();
      const started = performance.now();
      const end = (code: number, error?: unknown) =>
        hooks.onCallEnd({ rpc, code, durationMs: performance.now() - started, ...(error ? { error } : {}) });
      try {
        const result = await fn(...args);
        end(0);
        return result;
      } catch (error) {
        const mapped = toRpcError(error);
        if (mapped instanceof ConnectError) end(mapped.code);
        else end(13, mapped); // INTERNAL: the bridge hides the message from the client.
        throw mapped;
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}
