import type {
  DescMessage,
  DescMethod,
  DescMethodStreaming,
  DescMethodUnary,
  DescService,
} from "@bufbuild/protobuf";
import type {
  ContextValues,
  Interceptor,
  StreamResponse,
  Transport,
  UnaryRequest,
  UnaryResponse,
} from "@connectrpc/connect";
import { Code, ConnectError, createContextKey, createContextValues } from "@connectrpc/connect";
import { runUnaryCall } from "@connectrpc/connect/protocol";
import * as grpc from "@grpc/grpc-js";
import { connectErrorFromStatus } from "./error-details.ts";
import { createGrpcServiceDefinition } from "./grpc-service-definition.ts";
import { headersFromMetadata, metadataFromHeaders } from "./metadata.ts";
import { openServerStream, serverStreamMethod } from "./server-stream.ts";

export interface GrpcJsTransportOptions {
  /** The grpc-js channel every call goes over, shared by all services. Its owner closes it. */
  channel: grpc.ChannelInterface;
  /**
   * Timeout in ms for calls that set no `timeoutMs`, for every method or per method (undefined:
   * none), sent as the grpc-js `deadline` call option.
   */
  defaultTimeoutMs?: number | ((method: DescMethod) => number | undefined);
  /** grpc-js call options for every call, e.g. `credentials` or `interceptors`. A timeout wins over `deadline`. */
  callOptions?: grpc.CallOptions;
  /**
   * Connect interceptors around every call, outermost first, as Connect's own transports run them
   * (`runUnaryCall`): each sees the request (its headers, message, signal, context values) and the
   * response or the ConnectError. None: calls go straight to grpc-js, without the deadline signal
   * and timer `runUnaryCall` sets up.
   */
  interceptors?: Interceptor[];
}

/**
 * The call's deadline in ms since the epoch (the `Date.now` clock), undefined for a call without
 * one: set in the call's context values before the interceptors run, so one that sends the call
 * again (`next` more than once) knows how long it has left. Every attempt keeps that deadline.
 */
export const callDeadlineKey = createContextKey<number | undefined>(undefined, {
  description: "grpc-bridge call deadline",
});

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, value?: unknown) => void,
) => grpc.ClientUnaryCall;

/**
 * A Connect transport over a grpc-js channel, for `createClient(Service, transport)`.
 * Unary and server-streaming calls; `stream()` rejects other streams with Unimplemented.
 * Interceptors run around unary calls only: a server stream goes to grpc-js with the headers the
 * caller gave (server-stream.ts).
 *
 * A response's headers reach Connect as `res.header` (`onHeader`), its trailers as `res.trailer`
 * (`onTrailer`), both after grpc-js's retries: they are those of the attempt that answered. A
 * failure's trailers and headers (a trailers-only failure has none) are in `ConnectError.metadata`.
 * After a retry, grpc-js adds `grpc-previous-rpc-attempts` (the failed attempts) to the headers.
 */
export function createGrpcJsTransport(options: GrpcJsTransportOptions): Transport {
  const clients = new WeakMap<DescService, grpc.Client>();

  // The OpenTelemetry gRPC instrumentation patches clients made by makeGenericClientConstructor,
  // so calls go through such a client rather than through channel-level makeUnaryRequest.
  function clientOf(service: DescService): grpc.Client {
    let client = clients.get(service);
    if (client === undefined) {
      const ServiceClient = grpc.makeGenericClientConstructor(
        createGrpcServiceDefinition(service),
        service.typeName,
      );
      // With channelOverride the address and credentials are unused: the channel has its own.
      client = new ServiceClient(options.channel.getTarget(), grpc.credentials.createInsecure(), {
        channelOverride: options.channel,
      });
      clients.set(service, client);
    }
    return client;
  }

  function unaryMethod(method: DescMethodUnary): UnaryMethod {
    const client = clientOf(method.parent);
    const fn = (client as unknown as Record<string, UnaryMethod>)[method.name];
    if (fn === undefined) {
      throw new ConnectError(
        `${method.parent.typeName}.${method.name} is missing from its client`,
        Code.Internal,
      );
    }
    return fn.bind(client);
  }

  const defaultTimeout = options.defaultTimeoutMs;
  const timeoutOf = (method: DescMethod, timeoutMs: number | undefined) =>
    timeoutMs ?? (typeof defaultTimeout === "function" ? defaultTimeout(method) : defaultTimeout);

  /** One attempt over grpc-js, with no interceptor, due by `deadline` (ms since the epoch). */
  async function send<I extends DescMessage, O extends DescMessage>(
    method: DescMethodUnary<I, O>,
    signal: AbortSignal | undefined,
    deadline: number | undefined,
    header: ConstructorParameters<typeof Headers>[0],
    input: unknown,
  ): Promise<UnaryResponse<I, O>> {
    if (signal?.aborted) {
      throw ConnectError.from(signal.reason, Code.Canceled);
    }
    let metadata: grpc.Metadata;
    try {
      metadata = metadataFromHeaders(new Headers(header));
    } catch (error) {
      // A header gRPC cannot carry is the caller's bug, found before anything is sent.
      throw ConnectError.from(error, Code.Internal);
    }
    const callOptions: grpc.CallOptions = {
      ...options.callOptions,
      ...(deadline === undefined ? {} : { deadline }),
    };
    const call = unaryMethod(method);
    return new Promise((resolve, reject) => {
      let responseHeader = new Headers();
      let response: { message: unknown } | undefined;
      let trailer: grpc.Metadata | undefined;
      const onAbort = () => grpcCall.cancel();
      const fail = (error: grpc.ServiceError) => {
        signal?.removeEventListener("abort", onAbort);
        if (signal?.aborted) {
          // grpc-js only knows "Cancelled on client"; the caller's reason says why.
          reject(ConnectError.from(signal.reason, Code.Canceled));
          return;
        }
        const connectError = connectErrorFromStatus(error);
        for (const [key, value] of responseHeader) {
          connectError.metadata.append(key, value);
        }
        reject(connectError);
      };
      // grpc-js runs the callback just before the "status" event that carries the trailers.
      const succeedOnceComplete = () => {
        if (response === undefined || trailer === undefined) {
          return;
        }
        signal?.removeEventListener("abort", onAbort);
        resolve({
          stream: false,
          service: method.parent,
          method,
          header: responseHeader,
          trailer: headersFromMetadata(trailer),
          message: response.message as UnaryResponse<I, O>["message"],
        });
      };
      const grpcCall = call(input, metadata, callOptions, (error, value) => {
        if (error !== null) {
          fail(error);
          return;
        }
        response = { message: value };
        succeedOnceComplete();
      });
      grpcCall.on("metadata", (received: grpc.Metadata) => {
        responseHeader = headersFromMetadata(received);
      });
      grpcCall.on("status", (status: grpc.StatusObject) => {
        trailer = status.metadata;
        succeedOnceComplete();
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  const interceptors = options.interceptors ?? [];
  return {
    unary<I extends DescMessage, O extends DescMessage>(
      method: DescMethodUnary<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: unknown,
      contextValues?: ContextValues,
    ): Promise<UnaryResponse<I, O>> {
      const timeout = timeoutOf(method, timeoutMs);
      const deadline = timeout === undefined ? undefined : Date.now() + timeout;
      if (interceptors.length === 0) return send(method, signal, deadline, header, input);
      return runUnaryCall<I, O>({
        req: {
          stream: false,
          service: method.parent,
          method,
          requestMethod: "POST",
          url: `/${method.parent.typeName}/${method.name}`,
          header: new Headers(header),
          contextValues: (contextValues ?? createContextValues()).set(callDeadlineKey, deadline),
          message: input as UnaryRequest<I, O>["message"],
        },
        // The interceptors' request: their headers and message, and the call's own deadline.
        next: (req) => send(req.method, req.signal, deadline, req.header, req.message),
        ...(timeout === undefined ? {} : { timeoutMs: timeout }),
        ...(signal === undefined ? {} : { signal }),
        interceptors,
      });
    },

    async stream<I extends DescMessage, O extends DescMessage>(
      method: DescMethodStreaming<I, O>,
      signal: AbortSignal | undefined,
      timeoutMs: number | undefined,
      header: ConstructorParameters<typeof Headers>[0],
      input: AsyncIterable<unknown>,
    ): Promise<StreamResponse<I, O>> {
      if (method.methodKind !== "server_streaming") {
        throw new ConnectError(
          `${method.parent.typeName}.${method.name}: only server streaming is supported by the grpc-js transport`,
          Code.Unimplemented,
        );
      }
      const timeout = timeoutOf(method, timeoutMs);
      const deadline = timeout === undefined ? undefined : Date.now() + timeout;
      const open = serverStreamMethod(clientOf(method.parent), method);
      return openServerStream(method, open, {
        signal,
        deadline,
        header,
        input,
        options: options.callOptions,
      });
    },
  };
}
