import type { DescMethodUnary } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type {
  ContextValues,
  HandlerContext,
  Interceptor,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { createContextKey } from "@connectrpc/connect";

/** A unary handler as addService calls it: the request message and the call's context. */
export type UnaryHandlerFn = (request: unknown, ctx: HandlerContext) => unknown;

// The handler context travels through the interceptors in the request's context values, which
// interceptors pass on even when they replace the request object.
const handlerContextKey = createContextKey<HandlerContext | undefined>(undefined);

type UnaryNext = (req: UnaryRequest) => Promise<UnaryResponse>;

/**
 * The handler context of the call an interceptor sees, from its request's `contextValues`: the
 * response trailer to set before the call fails, the deadline (`timeoutMs()`), the values the
 * handler will read. Throws when the request did not come through `addService` (or an interceptor
 * dropped its context values).
 */
export function handlerContextOf(req: { contextValues: ContextValues }): HandlerContext {
  const ctx = req.contextValues.get(handlerContextKey);
  if (ctx === undefined) throw new Error("grpc-bridge: an interceptor dropped the call's context values");
  return ctx;
}

/**
 * `fn` behind Connect `interceptors`, outermost first, as Connect's own servers run them: each
 * sees a UnaryRequest (the handler context's request headers, signal, context values and URL, and
 * the decoded message) and the UnaryResponse (the response message; `header` and `trailer` are the
 * handler context's `responseHeader` and `responseTrailer`, so what an interceptor sets on them is
 * sent), or the error the handler or an interceptor threw. Without interceptors, `fn` itself.
 */
export function withServerInterceptors(
  method: DescMethodUnary,
  fn: UnaryHandlerFn,
  interceptors: readonly Interceptor[],
): UnaryHandlerFn {
  if (interceptors.length === 0) return fn;
  const handler: UnaryNext = async (req) => {
    const ctx = handlerContextOf(req);
    const result = await fn(req.message, ctx);
    return responseOf(method, ctx, create(method.output, result as never));
  };
  const chain = interceptors.reduceRight<UnaryNext>(
    (next, interceptor) => interceptor(next as never) as unknown as UnaryNext,
    handler,
  );
  return async (request, ctx) => {
    const res = await chain(requestOf(method, ctx, request));
    return res.message;
  };
}

// The request and response objects are built per call, and most interceptors never read a header
// or the URL: those are getters, so the handler context builds them only when one is asked for.
function requestOf(method: DescMethodUnary, ctx: HandlerContext, message: unknown): UnaryRequest {
  return {
    stream: false,
    service: method.parent,
    method,
    requestMethod: "POST",
    get url() {
      return ctx.url;
    },
    signal: ctx.signal,
    get header() {
      return ctx.requestHeader;
    },
    contextValues: ctx.values.set(handlerContextKey, ctx),
    message: message as never,
  };
}

function responseOf(method: DescMethodUnary, ctx: HandlerContext, message: unknown): UnaryResponse {
  return {
    stream: false,
    service: method.parent,
    method,
    get header() {
      return ctx.responseHeader;
    },
    get trailer() {
      return ctx.responseTrailer;
    },
    message: message as never,
  };
}
