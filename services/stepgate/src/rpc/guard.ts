import type { DescService } from "@bufbuild/protobuf";
import type { HandlerContext, ServiceImpl } from "@connectrpc/connect";
import { toRpcError } from "./errors.ts";

/** The response header that names the replica that answered, for debugging and balance checks. */
export const replicaHeader = "stepgate-replica";

/**
 * Wraps every handler so domain and store errors leave as proper gRPC statuses, and every
 * response names the replica that served it.
 */
export function guard<S extends DescService>(impl: ServiceImpl<S>, replicaId: string): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl as Record<string, (...a: unknown[]) => Promise<unknown>>)) {
    wrapped[name] = async (...args: unknown[]) => {
      (args[1] as HandlerContext).responseHeader.set(replicaHeader, replicaId);
      try {
        return await fn(...args);
      } catch (error) {
        throw toRpcError(error);
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}
