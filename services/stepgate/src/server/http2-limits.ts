import { constants, type ServerHttp2Stream } from "node:http2";
import type * as grpc from "@grpc/grpc-js";
import { grpcHttp2Servers } from "@stepgate/grpc-bridge";

/**
 * Caps the connections each of `server`'s HTTP/2 servers holds at once (`net.Server.maxConnections`:
 * Node closes a connection past it as it is accepted), so idle or half-open connections cannot
 * take the replica's memory or file descriptors. 0: no cap.
 */
export function limitConnections(server: grpc.Server, maxConnections: number): void {
  if (maxConnections <= 0) return;
  for (const http2 of grpcHttp2Servers(server)) http2.maxConnections = maxConnections;
}

/**
 * Resets (RST_STREAM NO_ERROR, RFC 9113 §8.1) every stream answered trailers-only while its client
 * is still sending or has never finished its request. grpc-js answers such a call (deadline passed,
 * bad message, unknown method, pending-request bounds) and leaves the stream half-closed: it and
 * its call stay in memory until the client ends the stream or the connection closes. A stream
 * answered with a message and trailers is left alone: resetting it could cut the trailers off.
 */
export function resetAnsweredStreams(server: grpc.Server): void {
  for (const http2 of grpcHttp2Servers(server)) http2.on("stream", watchAnswer);
}

function watchAnswer(stream: ServerHttp2Stream): void {
  stream.once("finish", resetIfAnsweredEarly);
}

// One function for every stream (no closure per call): Node calls a listener with its emitter as `this`.
function resetIfAnsweredEarly(this: ServerHttp2Stream): void {
  if (this.readableEnded || this.closed || this.sentHeaders?.["grpc-status"] === undefined) return;
  this.close(constants.NGHTTP2_NO_ERROR);
}
