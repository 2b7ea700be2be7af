import * as grpc from "@grpc/grpc-js";

// A call whose request has not arrived is held by grpc-js (stream, call, metadata: about 7 to 12
// KiB) with no bound at all: no handler runs, so neither admission control nor the bridge's
// deadline sees it, and without a grpc-timeout nothing ends it before its connection does.

/** How long a call may wait for its request, and how many calls may wait at once. */
export interface PendingRequestLimits {
  /** A call whose request has not fully arrived this long after its headers is ended, in ms. */
  timeoutMs: number;
  /** At most this many calls wait for their request at once; a new one ends the longest waiting. */
  maxPending: number;
}

interface Pending {
  readonly sinceMs: number;
  readonly call: grpc.ServerInterceptingCallInterface;
}

const evictedStatus = {
  code: grpc.status.UNAVAILABLE,
  details: "too many calls waiting for their request",
};

/**
 * Ends, with a status, each call whose request (unary and server streaming: up to the client's
 * half-close; client and bidirectional streaming: the first message) has not arrived within
 * `timeoutMs` (DEADLINE_EXCEEDED), and the longest-waiting call once `maxPending` wait (UNAVAILABLE,
 * so a client retries elsewhere). A well-behaved client's request follows its headers within
 * milliseconds, so it is never the longest waiting while streams that never send one are about.
 * Calls wait in arrival order; one sweep every quarter of the timeout ends the expired ones from the
 * front, so a call costs a set insertion and deletion, no timer of its own. Place it after call
 * accounting, which then logs these statuses like any other.
 */
export function boundPendingRequests(limits: PendingRequestLimits): grpc.ServerInterceptor {
  const waiting = new Set<Pending>();
  const timeoutStatus = {
    code: grpc.status.DEADLINE_EXCEEDED,
    details: `request not received within ${limits.timeoutMs} ms`,
  };
  let sweeper: NodeJS.Timeout | undefined;
  const end = (entry: Pending, status: typeof evictedStatus) => {
    waiting.delete(entry);
    entry.call.sendStatus(status);
  };
  const sweep = () => {
    const cutoff = performance.now() - limits.timeoutMs;
    for (const entry of waiting) {
      if (entry.sinceMs > cutoff) break;
      end(entry, timeoutStatus);
    }
    if (waiting.size === 0) {
      clearInterval(sweeper);
      sweeper = undefined;
    }
  };
  const add = (entry: Pending) => {
    if (waiting.size >= limits.maxPending) {
      const oldest = waiting.values().next().value;
      if (oldest) end(oldest, evictedStatus);
    }
    waiting.add(entry);
    // Started on demand and stopped once nothing waits, so an idle replica runs no timer.
    sweeper ??= setInterval(sweep, Math.max(25, limits.timeoutMs / 4)).unref();
  };
  return (method, call) => {
    const entry: Pending = { sinceMs: performance.now(), call };
    const done = () => void waiting.delete(entry);
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        add(entry);
        next(metadata);
      })
      .withOnReceiveMessage((message, next) => {
        if (method.requestStream) done();
        next(message);
      })
      .withOnReceiveHalfClose((next) => {
        done();
        next();
      })
      .withOnCancel(done)
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        done();
        next(status);
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}
