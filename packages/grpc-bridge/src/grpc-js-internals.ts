import type { Http2SecureServer, Http2Server } from "node:http2";
import * as grpc from "@grpc/grpc-js";

// The one file that reaches into grpc-js where it offers no public hook; grpc-js-internals.test.ts
// fails loudly on an upgrade that moves any of it, instead of silently turning a protection off.

/**
 * The HTTP/2 servers grpc-js created for `server`'s bound ports (empty before `bindAsync` completes),
 * for what grpc-js does not offer: connection events such as `session` and `tlsClientError`.
 * grpc-js 1.14 keeps them private. Its public `createConnectionInjector` hands over a way to inject
 * sockets, not the HTTP/2 server it creates, so TLS errors raised inside it stay out of reach too;
 * using it would mean terminating TLS, and reloading certificates, outside grpc-js.
 */
export function grpcHttp2Servers(server: grpc.Server): (Http2Server | Http2SecureServer)[] {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server | Http2SecureServer, unknown> })
    .http2Servers;
  return [...(http2Servers?.keys() ?? [])];
}

/** grpc-js's handler lookup: the path of a call to its handler, or null for an unknown method. */
type HandlerLookup = (this: grpc.Server, path: string) => unknown;

/**
 * Makes `server` answer a path it has no handler for with `fallback(path)`'s handler (a grpc-js
 * handler object: path, type, serialize, deserialize, func), instead of the UNIMPLEMENTED grpc-js
 * sends by itself, past every interceptor. Wraps grpc-js's private `_retrieveHandler`: false, and
 * nothing changed, when this grpc-js has none.
 */
export function fallBackHandlerLookup(server: grpc.Server, fallback: (path: string) => unknown): boolean {
  const internals = server as unknown as { _retrieveHandler?: HandlerLookup };
  const lookup = internals._retrieveHandler;
  if (typeof lookup !== "function") return false;
  internals._retrieveHandler = function (this: grpc.Server, path: string) {
    return lookup.call(this, path) ?? fallback(path);
  };
  return true;
}

/**
 * grpc-js's innermost call sends the statuses of its own checks (deadline, message size, request
 * decoding) through `this.sendStatus`, never through the interceptors' responders. When `call` is
 * that innermost call, shadow its `sendStatus` to see them too. Behind another interceptor
 * (`call` is a ServerInterceptingCall) it is out of reach: those calls end in `onCancel`.
 */
export function watchInnermostStatus(
  call: grpc.ServerInterceptingCallInterface,
  onStatus: (code: grpc.status) => void,
) {
  if (call instanceof grpc.ServerInterceptingCall || typeof call.sendStatus !== "function") return;
  const send = call.sendStatus;
  call.sendStatus = function (this: grpc.ServerInterceptingCallInterface, status) {
    onStatus(status.code);
    send.call(this, status);
  };
}
