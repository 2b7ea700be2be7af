import type { DescMethodServerStreaming } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import type { HandlerContext } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { type CallContext, callContextOf } from "./handler-context.ts";
import { metadataFromHeaders } from "./metadata.ts";

/** A server-streaming handler as Connect declares it: the request and the call's context, yielding responses. */
export type ServerStreamingFn = (request: unknown, ctx: HandlerContext) => AsyncIterable<unknown>;

/** How a streaming call's failure becomes a status: the unary path's mapping (add-service.ts). */
export type StatusOf = (error: unknown, ctx: HandlerContext) => grpc.StatusObject;

/**
 * A grpc-js handler for one server-streaming method. Each message the handler yields is written as
 * it comes, waiting for the socket to drain when grpc-js buffers too much, so a slow reader holds
 * the handler instead of the replica's memory. The handler's `responseHeader` is sent before the
 * first message (or with the status, when it fails first), its `responseTrailer` with the status.
 * The signal aborts when the client cancels, the deadline passes or the call completes; a handler
 * that stops on it ends the call quietly. Connect interceptors do not run around streams: the
 * handler checks its caller itself. `startCall` runs as each call starts and returns what to tell
 * once its status is known.
 */
export function serverStreamingHandler(
  method: DescMethodServerStreaming,
  fn: ServerStreamingFn,
  statusOf: StatusOf,
  startCall: () => (code: grpc.status) => void,
): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const onEnd = startCall();
    const ctx = callContextOf(method, call);
    call.once("cancelled", () => {
      ctx.abort(new ConnectError("call cancelled", Code.Canceled));
      onEnd(grpc.status.CANCELLED);
    });
    void stream(call, ctx, method, fn).then(
      () => {
        ctx.abort(completed);
        const trailer = ctx.responseTrailerSet;
        call.end(trailer === undefined ? undefined : metadataFromHeaders(trailer));
        onEnd(grpc.status.OK);
      },
      (error: unknown) => {
        // Mapped before the signal aborts: an error of the handler's own is not a cancel.
        const status = call.cancelled ? undefined : statusOf(error, ctx);
        ctx.abort(completed);
        if (status === undefined) return;
        call.emit("error", status);
        onEnd(status.code);
      },
    );
  };
}

async function stream(
  call: grpc.ServerWritableStream<unknown, unknown>,
  ctx: CallContext,
  method: DescMethodServerStreaming,
  fn: ServerStreamingFn,
): Promise<void> {
  let headersSent = false;
  ctx.signal.throwIfAborted();
  for await (const message of fn(call.request, ctx)) {
    if (call.cancelled) return;
    if (!headersSent) {
      headersSent = true;
      const header = ctx.responseHeaderSet;
      if (header !== undefined && [...header.keys()].length > 0)
        call.sendMetadata(metadataFromHeaders(header));
    }
    if (!call.write(create(method.output, message as never))) await drained(call, ctx.signal);
  }
}

const completed = new ConnectError("call completed", Code.Canceled);

// Resolves once grpc-js wants more, or the call is over (cancelled, deadline): nothing waits forever.
function drained(call: grpc.ServerWritableStream<unknown, unknown>, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    call.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}
