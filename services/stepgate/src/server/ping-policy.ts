import type { Http2Session } from "node:http2";
import type * as grpc from "@grpc/grpc-js";
import { grpcHttp2Servers } from "@stepgate/grpc-bridge";

// HTTP/2 ENHANCE_YOUR_CALM, the code gRPC core sends to clients that ping too often.
const enhanceYourCalm = 0x0b;

/**
 * Keepalive enforcement, which grpc-js servers lack: a ping sooner than `minIntervalMs` after the
 * previous one, with no new call in between, is a strike; past `maxStrikes` the connection gets
 * GOAWAY ENHANCE_YOUR_CALM, as grpc core does (`grpc.http2.max_ping_strikes`).
 */
export function policePings(server: grpc.Server, minIntervalMs: number, maxStrikes: number): void {
  if (minIntervalMs <= 0) return;
  for (const http2 of grpcHttp2Servers(server)) {
    http2.on("session", (session: Http2Session) => watchSession(session, minIntervalMs, maxStrikes));
  }
}

function watchSession(session: Http2Session, minIntervalMs: number, maxStrikes: number): void {
  let lastPing = 0;
  let strikes = 0;
  // A call resets the count: pings that keep an active connection alive are fine.
  session.on("stream", () => {
    strikes = 0;
  });
  session.on("ping", () => {
    const now = Date.now();
    if (lastPing !== 0 && now - lastPing < minIntervalMs) strikes++;
    lastPing = now;
    if (strikes > maxStrikes && !session.closed && !session.destroyed) {
      session.goaway(enhanceYourCalm, 0, Buffer.from("too_many_pings"));
      session.close();
    }
  });
}
