import type { Http2Session } from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { grpcHttp2Servers } from "@stepgate/grpc-bridge";
import { retryPushbackTrailer } from "../rpc/traffic-shaping.ts";

/** How the throttle reacts to one connection's refused calls; times in ms. */
export interface ConnectionThrottleOptions {
  /** Refused calls on one connection within `windowMs` that pause it. 0 turns the throttle off. */
  refusals: number;
  windowMs: number;
  /** The first pause; each pause on probation (right after one) doubles, up to `maxPauseMs`. */
  pauseMs: number;
  maxPauseMs: number;
  /** Told of each pause, in ms (metrics). */
  onPause?: (pauseMs: number) => void;
}

/**
 * Per-connection backpressure for floods: a connection whose calls keep being refused (shed,
 * answered with the `grpc-retry-pushback-ms` trailer, or rate-limited) is told to open no new
 * stream (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS 0, RFC 9113 §6.5.2) for a pause, then may open
 * 8 at a time (probation) until a window passes with few refusals; refusals on probation (a
 * quarter as many) pause it again for twice as long. HTTP/2 clients then hold their calls back instead of sending them,
 * so a flood costs the replica nothing while it is paused, and other connections, with the
 * critical calls on them, are read as soon as they send. Streams already open run on; calls that
 * are served never pause a connection, so spare capacity still serves any caller.
 */
export interface ConnectionThrottle {
  /** Sees every call's status (add it to the grpc-js server's interceptors). */
  interceptor: grpc.ServerInterceptor;
  /** Starts watching the server's connections (once its ports are bound). */
  watch(server: grpc.Server): void;
  /** Connections paused so far, for gauges and tests. */
  readonly pauses: number;
}

/** What one connection's refusals stand at. */
interface Watched {
  session: Http2Session;
  windowStart: number;
  refused: number;
  pauseMs: number;
  pausedUntil: number;
  /** After a pause, until a window passes with few refusals: `probationStreams` at a time. */
  probation: boolean;
}

// What a server that never paused advertises (Node's default: no limit).
const unlimitedStreams = 2 ** 32 - 1;
// Streams a connection on probation may have open at once.
const probationStreams = 8;

export function createConnectionThrottle(options: ConnectionThrottleOptions): ConnectionThrottle {
  const connections = new Map<string, Watched>();
  let pauses = 0;
  const setStreams = ({ session }: Watched, maxConcurrentStreams: number) => {
    if (!session.destroyed && !session.closed) session.settings({ maxConcurrentStreams });
  };
  const pause = (watched: Watched, now: number) => {
    const repeated = watched.probation;
    watched.pauseMs = repeated ? Math.min(options.maxPauseMs, watched.pauseMs * 2) : options.pauseMs;
    watched.pausedUntil = now + watched.pauseMs;
    // Its first window on probation starts when the pause ends.
    watched.windowStart = watched.pausedUntil;
    watched.refused = 0;
    pauses += 1;
    options.onPause?.(watched.pauseMs);
    setStreams(watched, 0);
    // Back on probation: a few streams at a time, so its resumed calls do not arrive all at once.
    setTimeout(() => {
      watched.probation = true;
      setStreams(watched, probationStreams);
    }, watched.pauseMs).unref();
  };
  /** One call's end on the connection `peer`: `refused` when it was refused for load. */
  const ended = (peer: string, refused: boolean) => {
    const watched = connections.get(peer);
    if (!watched) return;
    const now = Date.now();
    // Calls sent before the pause still end during it: they do not count against it.
    if (now < watched.pausedUntil) return;
    if (now - watched.windowStart >= options.windowMs) {
      // A window on probation with few refusals: the connection is trusted again.
      if (watched.probation && watched.refused * 4 < options.refusals) {
        watched.probation = false;
        setStreams(watched, unlimitedStreams);
      }
      watched.windowStart = now;
      watched.refused = 0;
    }
    if (!refused) return;
    watched.refused += 1;
    const threshold = watched.probation ? Math.ceil(options.refusals / 4) : options.refusals;
    if (watched.refused >= threshold) pause(watched, now);
  };
  return {
    interceptor: (_method, call) =>
      new grpc.ServerInterceptingCall(
        call,
        new grpc.ResponderBuilder()
          .withSendStatus((status, next) => {
            if (options.refusals > 0) ended(call.getPeer(), isRefusal(status));
            next(status);
          })
          .build(),
      ),
    watch(server) {
      for (const http2 of grpcHttp2Servers(server)) {
        http2.on("session", (session: Http2Session) => {
          const peer = peerOf(session);
          if (peer === undefined) return;
          connections.set(peer, {
            session,
            windowStart: 0,
            refused: 0,
            pauseMs: 0,
            pausedUntil: 0,
            probation: false,
          });
          session.once("close", () => connections.delete(peer));
        });
      }
    },
    get pauses() {
      return pauses;
    },
  };
}

/** A call refused for load: shed (it carries the pushback trailer) or rate-limited. */
function isRefusal(status: { code: grpc.status; metadata?: grpc.Metadata | null | undefined }): boolean {
  if (status.code === grpc.status.RESOURCE_EXHAUSTED) return true;
  return (
    status.code === grpc.status.UNAVAILABLE && (status.metadata?.get(retryPushbackTrailer).length ?? 0) > 0
  );
}

/** The connection's peer as grpc-js names it on its calls (`getPeer()`): `address:port`. */
function peerOf(session: Http2Session): string | undefined {
  const socket = session.socket;
  if (!socket?.remoteAddress) return undefined;
  return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
}
