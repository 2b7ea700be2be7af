import type { DescMessage, DescMethodServerStreaming, DescMethodStreaming } from "@bufbuild/protobuf";
import type { StreamResponse } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { connectErrorFromStatus } from "./error-details.ts";
import { headersFromMetadata, metadataFromHeaders } from "./metadata.ts";

/** A generic client's method for a server stream (grpc.makeGenericClientConstructor). */
export type OpenStream = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
) => grpc.ClientReadableStream<unknown>;

/** The client's method for `method`; fails with INTERNAL when the client lacks it. */
export function serverStreamMethod(client: grpc.Client, method: DescMethodStreaming): OpenStream {
  const fn = (client as unknown as Record<string, OpenStream>)[method.name];
  if (fn === undefined) {
    throw new ConnectError(
      `${method.parent.typeName}.${method.name} is missing from its client`,
      Code.Internal,
    );
  }
  return fn.bind(client);
}

export interface ServerStreamCall {
  signal: AbortSignal | undefined;
  /** Epoch ms; undefined: no deadline (a stream meant to stay open). */
  deadline: number | undefined;
  header: ConstructorParameters<typeof Headers>[0];
  /** The one request message (Connect hands a server stream's request over as an iterable). */
  input: AsyncIterable<unknown>;
  options: grpc.CallOptions | undefined;
}

/**
 * Opens a server stream and resolves once its response headers arrive, as Connect's transports do;
 * a failure before them (a trailers-only status) rejects with its ConnectError. The messages then
 * arrive through `message`; a failure after the headers is thrown by the iteration, and the
 * trailers fill `trailer` when the status comes. Breaking off the iteration or aborting `signal`
 * cancels the call.
 */
export async function openServerStream<I extends DescMessage, O extends DescMessage>(
  method: DescMethodStreaming<I, O>,
  open: OpenStream,
  call: ServerStreamCall,
): Promise<StreamResponse<I, O>> {
  let request: unknown;
  for await (const message of call.input) {
    request = message;
    break;
  }
  if (call.signal?.aborted) throw ConnectError.from(call.signal.reason, Code.Canceled);
  let metadata: grpc.Metadata;
  try {
    metadata = metadataFromHeaders(new Headers(call.header));
  } catch (error) {
    throw ConnectError.from(error, Code.Internal);
  }
  const stream = open(request ?? {}, metadata, {
    ...call.options,
    ...(call.deadline === undefined ? {} : { deadline: call.deadline }),
  });
  const trailer = new Headers();
  stream.on("status", (status: grpc.StatusObject) => {
    for (const [key, value] of headersFromMetadata(status.metadata)) trailer.append(key, value);
  });
  const onAbort = () => stream.cancel();
  call.signal?.addEventListener("abort", onAbort, { once: true });
  const header = await new Promise<Headers>((resolve, reject) => {
    stream.once("metadata", (received: grpc.Metadata) => resolve(headersFromMetadata(received)));
    stream.once("error", (error: grpc.ServiceError) => reject(streamError(error, call.signal)));
  });
  return {
    stream: true,
    service: method.parent,
    method: method as DescMethodServerStreaming<I, O>,
    header,
    trailer,
    message: messagesOf(stream, call.signal, onAbort) as StreamResponse<I, O>["message"],
  };
}

async function* messagesOf(
  stream: grpc.ClientReadableStream<unknown>,
  signal: AbortSignal | undefined,
  onAbort: () => void,
): AsyncIterable<unknown> {
  let ended = false;
  try {
    for await (const message of stream) yield message;
    ended = true;
  } catch (error) {
    ended = true;
    throw streamError(error, signal);
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (!ended) stream.cancel();
  }
}

// grpc-js only knows "Cancelled on client"; the caller's reason says why.
function streamError(error: unknown, signal: AbortSignal | undefined): ConnectError {
  if (signal?.aborted) return ConnectError.from(signal.reason, Code.Canceled);
  if (typeof error === "object" && error !== null && "code" in error && "metadata" in error) {
    return connectErrorFromStatus(error as grpc.ServiceError);
  }
  return ConnectError.from(error, Code.Unknown);
}
