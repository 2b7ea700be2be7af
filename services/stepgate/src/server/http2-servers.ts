import type { Http2SecureServer, Http2Server } from "node:http2";
import type * as grpc from "@grpc/grpc-js";

/**
 * The HTTP/2 servers grpc-js created for `server`'s bound ports (empty before `bindAsync` completes),
 * for what grpc-js does not offer: connection events such as `session` and `tlsClientError`.
 * grpc-js 1.14 keeps them private. Its public `createConnectionInjector` hands over a way to inject
 * sockets, not the HTTP/2 server it creates, so TLS errors raised inside it stay out of reach too;
 * using it would mean terminating TLS, and reloading certificates, outside grpc-js. This is the one
 * place that reaches into grpc-js; a grpc-js upgrade must keep `http2Servers` or change this.
 */
export function grpcHttp2Servers(server: grpc.Server): (Http2Server | Http2SecureServer)[] {
  const http2Servers = (server as unknown as { http2Servers?: Map<Http2Server | Http2SecureServer, unknown> })
    .http2Servers;
  return [...(http2Servers?.keys() ?? [])];
}
