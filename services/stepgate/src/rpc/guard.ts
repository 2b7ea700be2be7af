import type { DescService } from "@bufbuild/protobuf";
import type { ServiceImpl } from "@connectrpc/connect";
import { toRpcError } from "./errors.ts";

/** Wraps every handler so domain and store errors leave as proper gRPC statuses. */
export function guard<S extends DescService>(impl: ServiceImpl<S>): ServiceImpl<S> {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(impl as Record<string, (...a: unknown[]) => Promise<unknown>>)) {
    wrapped[name] = async (...args: unknown[]) => {
      try {
        return await fn(...args);
      } catch (error) {
        throw toRpcError(error);
      }
    };
  }
  return wrapped as ServiceImpl<S>;
}
