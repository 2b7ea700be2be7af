import type { DescMethod } from "@bufbuild/protobuf";
import { createHandlerContext, type HandlerContext } from "@connectrpc/connect";

/** Further parts of a call's context (`createHandlerContext`'s options of the same names). */
export type CallParts = Omit<
  Parameters<typeof createHandlerContext>[0],
  "service" | "method" | "protocolName" | "requestMethod" | "url"
>;

/**
 * A Connect handler context for one gRPC call of `method` over loopback, as a handler or an
 * interceptor sees it, for unit tests and benchmarks that run them without a server; `parts` add
 * request headers, context values or a timeout (ms).
 */
export function handlerContextFor(method: DescMethod, parts: CallParts = {}): HandlerContext {
  return createHandlerContext({
    service: method.parent,
    method,
    protocolName: "grpc",
    requestMethod: "POST",
    url: `http://127.0.0.1/${method.parent.typeName}/${method.name}`,
    ...parts,
  });
}
