import type { DescMethod, DescMethodServerStreaming, DescMethodUnary, DescService } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext, Interceptor, ServiceImpl } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { statusDetailsFromError, statusDetailsKey } from "./error-details.ts";
import { createGrpcServiceDefinition } from "./grpc-service-definition.ts";
import { callContextOf } from "./handler-context.ts";
import { metadataFromHeaders } from "./metadata.ts";
import { withServerInterceptors } from "./server-interceptors.ts";
import { type ServerStreamingFn, serverStreamingHandler } from "./server-streaming.ts";
import { grpcStatusFromCode } from "./status-code.ts";

export interface AddServiceOptions {
  /**
   * Receives whatever a handler threw that was not a ConnectError, so the server can log it.
   * The client only sees INTERNAL "internal error": the original message may hold secrets.
   */
  onError?: (error: unknown, info: { method: DescMethod }) => void;
  /** Called once per call when its status is known, for logs and metrics. */
  onCallEnd?: (info: CallEndInfo) => void;
  /**
   * Connect interceptors around every implemented method's handler, outermost first (see
   * `withServerInterceptors`); what they throw is answered like the handler's own errors.
   */
  interceptors?: Interceptor[];
}

export interface CallEndInfo {
  service: DescService;
  method: DescMethod;
  /** The gRPC status the client was sent, OK (0) on success. */
  code: grpc.status;
  durationMs: number;
}

type Status = { code: grpc.status; details: string; metadata?: grpc.Metadata };
type UnaryFn = (request: unknown, ctx: HandlerContext) => unknown;

/**
 * Serve a protobuf-es service on a grpc-js server with Connect's handler signatures.
 * Methods missing from `impl` answer UNIMPLEMENTED. Unary and server-streaming methods can be
 * implemented (server streams without the interceptors, see `serverStreamingHandler`).
 *
 * Response headers and trailers: a call that succeeds sends the handler's `responseHeader` (if
 * any) as response headers, then the message, then `responseTrailer` with the status. A call that
 * fails sends nothing before its status: a trailers-only response whose metadata is the handler's
 * `responseHeader`, its `responseTrailer` and the error's metadata and details. gRPC clients
 * commit a call once response headers arrive and never retry it afterwards, so a retryable
 * failure (UNAVAILABLE) must not be preceded by headers. Connect callers still find every key in
 * `ConnectError.metadata`.
 *
 * Deadlines: the handler's `signal` aborts when the call's deadline passes (DEADLINE_EXCEEDED) or
 * the client cancels it (CANCELLED), and `timeoutMs()` tells the ms left. A call whose deadline
 * has already passed when it reaches the handler (a grpc-timeout of about 0 ms, or a request that
 * took longer to arrive than the deadline) is not started: it is answered DEADLINE_EXCEEDED and
 * the handler never runs.
 */
export function addService<S extends DescService>(
  server: grpc.Server,
  service: S,
  impl: Partial<ServiceImpl<S>>,
  options: AddServiceOptions = {},
): void {
  const handlers: grpc.UntypedServiceImplementation = {};
  for (const method of service.methods) {
    const fn: unknown = (impl as Record<string, unknown>)[method.localName];
    if (method.methodKind === "unary") {
      const unary =
        typeof fn === "function"
          ? withServerInterceptors(
              method as DescMethodUnary,
              fn.bind(impl) as UnaryFn,
              options.interceptors ?? [],
            )
          : unimplemented(method);
      handlers[method.name] = unaryHandler(method as DescMethodUnary, unary, options);
    } else if (method.methodKind === "server_streaming" && typeof fn === "function") {
      handlers[method.name] = serverStreamingHandler(
        method as DescMethodServerStreaming,
        fn.bind(impl) as ServerStreamingFn,
        (error, ctx) => {
          const status = statusFromThrown(error, ctx, method, options);
          return {
            code: status.code,
            details: status.details,
            metadata: status.metadata ?? new grpc.Metadata(),
          };
        },
        () => callEnd(method, options),
      );
    } else if (typeof fn === "function") {
      // Failing at startup beats a handler that silently answers UNIMPLEMENTED in production.
      throw new Error(
        `grpc-bridge: ${method.methodKind} method ${service.typeName}.${method.name} is not supported`,
      );
    } else {
      handlers[method.name] = streamingUnimplemented(method, options);
    }
  }
  server.addService(createGrpcServiceDefinition(service), handlers);
}

function unaryHandler(
  method: DescMethodUnary,
  fn: UnaryFn,
  options: AddServiceOptions,
): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const end = callEnd(method, options);
    const ctx = callContextOf(method, call);
    const deadline = Number(call.getDeadline());
    let settled = false;
    // grpc-js emits "cancelled" after every call, and at the deadline (its own timer ends the call
    // then); for a settled call it means nothing.
    call.once("cancelled", () => {
      if (settled) return;
      const error =
        Date.now() >= deadline - deadlineSlackMs
          ? new ConnectError("deadline exceeded", Code.DeadlineExceeded)
          : new ConnectError("call cancelled", Code.Canceled);
      ctx.abort(error);
      end(grpcStatusFromCode(error.code));
    });
    void (async () => {
      let response: unknown;
      let status: Status | undefined;
      try {
        // A context whose deadline had passed when the call arrived is aborted from the start.
        ctx.signal.throwIfAborted();
        const result = await fn(call.request, ctx);
        // A response after the deadline or a cancel is too late: the call ends with that status.
        ctx.signal.throwIfAborted();
        response = create(method.output, result as never);
      } catch (error) {
        status = statusFromThrown(error, ctx, method, options);
      }
      settled = true;
      try {
        if (status === undefined) {
          const header = ctx.responseHeaderSet;
          if (header !== undefined && [...header.keys()].length > 0)
            call.sendMetadata(metadataFromHeaders(header));
          const trailer = ctx.responseTrailerSet;
          callback(null, response, trailer === undefined ? undefined : metadataFromHeaders(trailer));
          end(grpc.status.OK);
        } else {
          // No headers first: grpc-js sends a status with no headers before it as trailers-only.
          callback(status, null);
          end(status.code);
        }
      } catch (error) {
        // Headers or trailers gRPC cannot carry are a server bug, reported like any other.
        report(options.onError, error, { method });
        callback(internalError, null);
        end(internalError.code);
      } finally {
        // Connect aborts the signal when a call completes. A shared reason: building an error (and
        // its stack) for every call is measurable.
        ctx.abort(callCompleted);
      }
    })();
  };
}

// A client resets the stream when its own deadline passes, which is earlier than ours by the
// request's transit time; a reset that close to our deadline is the deadline, not a cancel.
const deadlineSlackMs = 100;

const internalError: Status = { code: grpc.status.INTERNAL, details: "internal error" };

const callCompleted = new ConnectError("call completed", Code.Canceled);

function statusFromThrown(
  error: unknown,
  ctx: HandlerContext,
  method: DescMethod,
  options: AddServiceOptions,
): Status {
  let connectError: ConnectError | undefined;
  if (error instanceof ConnectError) {
    connectError = error;
  } else if (ctx.signal.aborted) {
    // An AbortError from work the call's own signal cancelled: report the deadline or cancel.
    connectError = ConnectError.from(ctx.signal.reason, Code.Canceled);
  } else {
    report(options.onError, error, { method });
  }
  try {
    // A failed call is trailers-only (no headers before the status), so response headers the
    // handler set travel with the trailers, as in a trailers-only response of any gRPC server.
    const trailer = metadataFromHeaders(ctx.responseTrailer, metadataFromHeaders(ctx.responseHeader));
    if (connectError === undefined) {
      // What the handler set on purpose is kept; nothing of the unexpected error is sent.
      return { ...internalError, metadata: trailer };
    }
    // Metadata of an error received from another server describes that call, not this one.
    if (!connectError.isWireError) {
      metadataFromHeaders(connectError.metadata, trailer);
    }
    if (connectError.details.length > 0) {
      trailer.set(statusDetailsKey, statusDetailsFromError(connectError));
    }
    return {
      code: grpcStatusFromCode(connectError.code),
      details: connectError.rawMessage,
      metadata: trailer,
    };
  } catch (failure) {
    report(options.onError, failure, { method });
    return internalError;
  }
}

function unimplemented(method: DescMethod): UnaryFn {
  return () => {
    throw new ConnectError(`${method.parent.typeName}.${method.name} is not implemented`, Code.Unimplemented);
  };
}

function streamingUnimplemented(method: DescMethod, options: AddServiceOptions): grpc.UntypedHandleCall {
  const status: Status = {
    code: grpc.status.UNIMPLEMENTED,
    details: `${method.parent.typeName}.${method.name} is not implemented`,
  };
  return (call: grpc.ServerReadableStream<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
    // Client-streaming handlers answer through the callback, the others by emitting an error.
    if (callback === undefined) {
      call.emit("error", status);
    } else {
      callback(status, null);
    }
    callEnd(method, options)(status.code);
  };
}

function callEnd(method: DescMethod, options: AddServiceOptions): (code: grpc.status) => void {
  const started = performance.now();
  let ended = false;
  return (code) => {
    if (ended) {
      return;
    }
    ended = true;
    report(options.onCallEnd, {
      service: method.parent,
      method,
      code,
      durationMs: performance.now() - started,
    });
  };
}

// A throwing log or metrics hook must never change the outcome of a call.
function report<A extends unknown[]>(hook: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    hook?.(...args);
  } catch {
    // Nowhere left to report it.
  }
}
