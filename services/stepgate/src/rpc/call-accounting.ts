import { AsyncLocalStorage } from "node:async_hooks";
import * as grpc from "@grpc/grpc-js";
import { fallBackHandlerLookup, watchInnermostStatus } from "@stepgate/grpc-bridge";
import { describeError } from "../log/describe-error.ts";
import type { Logger } from "../log/logger.ts";

// Call accounting: one log line and one metrics report per gRPC call, with the status the client
// was really sent. A handler returning is not the end of a call: the deadline or a cancel may
// still end it, and grpc-js refuses some calls before any handler runs. Where each status is seen:
//
// - statuses a handler (or the bridge, or grpc-js's own handler glue) sends pass this server
//   interceptor's `sendStatus` responder;
// - statuses grpc-js's innermost call sends by itself bypass every interceptor's responder: the
//   deadline timer (DEADLINE_EXCEEDED), undecodable request bytes (INTERNAL "Error deserializing
//   request"), a request over `grpc.max_receive_message_length` (RESOURCE_EXHAUSTED), a failed
//   decompression. An interceptor only gets `onCancel` for them, so when the call it wraps is that
//   innermost call, the interceptor also watches its `sendStatus`;
// - a call the client cancels, or abandons at its own deadline, gets no status at all: `onCancel`
//   arrives first, and the call is reported as DEADLINE_EXCEEDED when its deadline has (nearly)
//   passed, as CANCELLED otherwise, which is what the client saw;
// - a method no service implements never reaches an interceptor: grpc-js answers UNIMPLEMENTED
//   straight from its handler lookup. `acceptUnknownMethods` makes that lookup return a handler
//   answering the same UNIMPLEMENTED, so those calls pass the interceptor like any other.
//
// The watch on the innermost call and the handler lookup reach into grpc-js 1.14 internals; if a
// later grpc-js changes them, both checks fail quietly (and test/call-accounting.test.ts loudly).

/**
 * The attributes `stepgate.rpc.calls` and `stepgate.rpc.errors` are counted by: both bounded
 * (methods, status codes). A type, not an interface, so it is assignable to OpenTelemetry's `Attributes`.
 */
export type RpcCallAttributes = {
  /** `package.Service/Method`, or `_OTHER` for a method the server does not implement. */
  "rpc.method": string;
  /** The numeric gRPC status code: 0 for OK. */
  "rpc.grpc.status_code": number;
};

/** `RpcCallAttributes` of a call that did not end OK: the status code is never 0. */
export type RpcErrorAttributes = RpcCallAttributes;

/** Where call accounting counts calls; Stepgate's `Metrics` satisfies it. */
export interface CallMetrics {
  /** Counts one call that ended with any status but OK. */
  rpcError(attributes: RpcErrorAttributes): void;
  /** Counts one call that ended, with any status: the denominator of error ratios. */
  rpcCall(attributes: RpcCallAttributes): void;
}

/** What `createCallAccounting` reports to. */
export interface CallAccountingOptions {
  /**
   * Receives the one line per call, `{ rpc, status, ms }` with `rpc` as `package.Service/Method`,
   * `status` the gRPC status name and `ms` the milliseconds from the request headers to the status
   * (or the cancel): `"call"` at info, or `"call failed"` at error with `error` (describeError) when
   * a handler failed unexpectedly. Lines are written in the handler's trace context when it ran.
   */
  logger: Logger;
  /** Counts each call by method and status code, and separately each call that did not end OK. */
  metrics: CallMetrics;
  /**
   * Services whose calls are logged at debug instead of info, because probes call them every few
   * seconds: by default `grpc.health.v1.Health`. They are still counted, and still logged at error
   * if a handler fails unexpectedly. Reflection (grpcurl, buf curl) is rare and stays at info.
   */
  quietServices?: readonly string[];
}

/** What `handlerHooks.onCallEnd` needs of a handler's outcome. */
export interface HandlerOutcome {
  /** A failure that was not the service's own answer: the client is sent INTERNAL. */
  error?: unknown;
}

/** The pieces to wire into a grpc-js server and the guard interceptor (rpc/guard.ts). */
export interface CallAccounting {
  /**
   * The grpc-js server interceptor that reports every call once. Pass it first in the server's
   * `interceptors`, so it wraps grpc-js's innermost call and sees the statuses grpc-js sends itself.
   */
  readonly interceptor: grpc.ServerInterceptor;
  /**
   * Makes calls to methods that no service implements reach the interceptor (they are still
   * answered UNIMPLEMENTED, with grpc-js's own message). Call it once, on the server built with
   * `interceptor`. Returns false if this grpc-js has no handler lookup to extend: those calls then
   * go unreported.
   */
  acceptUnknownMethods(server: grpc.Server): boolean;
  /**
   * For the guard around each service handler (rpc/guard.ts). `onCallStart`, called as the handler
   * starts, remembers the handler's trace context, so a status sent later (the deadline, a cancel)
   * is still logged with the call's trace and span ids. `onCallEnd` hands over an unexpected error:
   * the call is then logged as "call failed" with the error's safe description, or, if the call had
   * already ended (its deadline passed first), the error gets its own line.
   * Both must run inside the handler's async context; elsewhere they do nothing.
   */
  readonly handlerHooks: {
    onCallStart(): void;
    onCallEnd(outcome: HandlerOutcome): void;
  };
}

/** The fields of every call line (see `CallAccountingOptions.logger`). */
interface CallLine {
  /** `package.Service/Method` as the client asked for it (cut to 200 characters). */
  rpc: string;
  /** The gRPC status name, e.g. `OK`, `DEADLINE_EXCEEDED`. */
  status: string;
  /** Milliseconds, to a tenth. */
  ms: number;
}

interface CallState {
  readonly rpc: string;
  readonly implemented: boolean;
  readonly quiet: boolean;
  readonly startedMs: number;
  readonly deadlineMs: number;
  ended: boolean;
  error: unknown;
  /** Runs a function in the handler's async context (its trace context), once the handler started. */
  inHandlerContext: (<R>(fn: () => R) => R) | undefined;
}

// A client resets the stream when its own deadline passes, which is earlier than ours by the
// request's transit time; a cancel that close to the deadline is the deadline (as in the bridge).
const deadlineSlackMs = 100;

const maxRpcLength = 200;

/** Builds the interceptor and hooks that log and count each call once with its real status. */
export function createCallAccounting(options: CallAccountingOptions): CallAccounting {
  const { logger, metrics } = options;
  const quietServices = new Set(options.quietServices ?? ["grpc.health.v1.Health"]);
  const current = new AsyncLocalStorage<CallState>();

  const end = (state: CallState, code: grpc.status) => {
    if (state.ended) return;
    state.ended = true;
    const durationMs = performance.now() - state.startedMs;
    const report = () => {
      const line: CallLine = {
        rpc: state.rpc,
        status: grpc.status[code] ?? String(code),
        ms: Math.round(durationMs * 10) / 10,
      };
      if (state.error !== undefined) {
        logger.error({ ...line, error: describeError(state.error) }, "call failed");
      } else if (state.quiet) {
        logger.debug(line, "call");
      } else {
        logger.info(line, "call");
      }
      const counted = {
        "rpc.method": state.implemented ? state.rpc : "_OTHER",
        "rpc.grpc.status_code": code,
      };
      metrics.rpcCall(counted);
      if (code !== grpc.status.OK) metrics.rpcError(counted);
    };
    // A throwing logger or meter must never change the outcome of a call.
    try {
      if (state.inHandlerContext) state.inHandlerContext(report);
      else report();
    } catch {
      // Nowhere left to report it.
    }
  };

  const interceptor: grpc.ServerInterceptor = (method, call) => {
    const rpc = (method.path.startsWith("/") ? method.path.slice(1) : method.path).slice(0, maxRpcLength);
    const state: CallState = {
      rpc,
      implemented: method.requestDeserialize !== unknownMethodDeserialize,
      quiet: quietServices.has(rpc.slice(0, rpc.lastIndexOf("/"))),
      startedMs: performance.now(),
      deadlineMs: Number(call.getDeadline()),
      ended: false,
      error: undefined,
      inHandlerContext: undefined,
    };
    watchInnermostStatus(call, (code) => end(state, code));
    // The handler runs from one of these listener callbacks (which one depends on the method kind):
    // running them in `current` lets the handler hooks find this call's state.
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => current.run(state, next, metadata))
      .withOnReceiveMessage((message, next) => current.run(state, next, message))
      .withOnReceiveHalfClose((next) => current.run(state, next))
      .withOnCancel(() => {
        // Only reached without a status for calls the client cancelled or abandoned at its deadline.
        const deadlineCode =
          Date.now() >= state.deadlineMs - deadlineSlackMs
            ? grpc.status.DEADLINE_EXCEEDED
            : grpc.status.CANCELLED;
        end(state, deadlineCode);
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        end(state, status.code);
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };

  return {
    interceptor,
    acceptUnknownMethods,
    handlerHooks: {
      onCallStart() {
        const state = current.getStore();
        // Only for a line that will be written: a snapshot per call is measurable on a no-op.
        if (state && logger.isLevelEnabled(state.quiet ? "debug" : "info")) {
          state.inHandlerContext = AsyncLocalStorage.snapshot();
        }
      },
      onCallEnd({ error }) {
        const state = current.getStore();
        if (state === undefined || error === undefined) return;
        if (!state.ended) {
          state.error = error;
          // Its error line carries the handler's trace context, whatever the level.
          state.inHandlerContext ??= AsyncLocalStorage.snapshot();
          return;
        }
        try {
          logger.error(
            { rpc: state.rpc, error: describeError(error) },
            "handler failed after its call ended",
          );
        } catch {
          // As above.
        }
      },
    },
  };
}

/** Marks the handler that answers methods no service implements (and keeps bytes as they came). */
const unknownMethodDeserialize = (bytes: Buffer): Buffer => bytes;

function acceptUnknownMethods(server: grpc.Server): boolean {
  return fallBackHandlerLookup(server, unknownMethodHandler);
}

/**
 * A handler answering UNIMPLEMENTED with the message grpc-js itself sends for unknown methods. As a
 * bidirectional-streaming handler it answers on the request headers, whatever the client streams.
 */
function unknownMethodHandler(path: string) {
  const status = {
    code: grpc.status.UNIMPLEMENTED,
    details: `The server does not implement the method ${path}`,
  };
  return {
    path,
    type: "bidi",
    serialize: (bytes: Buffer) => bytes,
    deserialize: unknownMethodDeserialize,
    func: (stream: grpc.ServerDuplexStream<Buffer, Buffer>) => stream.emit("error", status),
  };
}
