import { connect } from "node:http2";

/** A flood on one HTTP/2 connection, by a client with no gRPC library. */
export interface FloodOptions {
  /** `/<package>.<Service>/<Method>`; the request is `{ subject: "u" }` (field 1, a string). */
  path: string;
  headers: Record<string, string>;
  /** Streams in flight at once. */
  streams: number;
  /** Requests in all; the flood ends once all are answered or reset, or after `timeoutMs`. */
  requests: number;
  /** Default 30000. */
  timeoutMs?: number;
}

/** What the flooding connection saw. */
export interface FloodSeen {
  answered: number;
  /** Answers by `grpc-status`. */
  statuses: Map<string, number>;
  /** Streams reset or failed without an answer (e.g. REFUSED_STREAM). */
  reset: number;
  /** SETTINGS from the server with MAX_CONCURRENT_STREAMS 0, then with more. */
  pauses: number;
  resumes: number;
  /** Time spent paused, in ms. */
  pausedMs: number;
}

// A gRPC frame of `{ subject: "u" }`: not compressed, 3 bytes.
const body = Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x01, 0x75]);

/** Floods `address` with `requests` calls on one connection, `streams` at a time; resolves with what it saw. */
export async function floodConnection(address: string, options: FloodOptions): Promise<FloodSeen> {
  const session = connect(`http://${address}`);
  const seen: FloodSeen = { answered: 0, statuses: new Map(), reset: 0, pauses: 0, resumes: 0, pausedMs: 0 };
  let pausedAt: number | undefined;
  session.on("remoteSettings", (settings) => {
    if (settings.maxConcurrentStreams === 0 && pausedAt === undefined) {
      seen.pauses += 1;
      pausedAt = performance.now();
    } else if ((settings.maxConcurrentStreams ?? 1) > 0 && pausedAt !== undefined) {
      seen.resumes += 1;
      seen.pausedMs += performance.now() - pausedAt;
      pausedAt = undefined;
    }
  });
  session.on("error", () => {});
  const one = () =>
    new Promise<void>((resolve) => {
      const stream = session.request({
        ":method": "POST",
        ":path": options.path,
        "content-type": "application/grpc",
        te: "trailers",
        ...options.headers,
      });
      let status: string | undefined;
      const take = (headers: Record<string, unknown>) => {
        if (headers["grpc-status"] !== undefined) status = String(headers["grpc-status"]);
      };
      stream.on("response", take);
      stream.on("trailers", take);
      stream.on("data", () => {});
      stream.on("error", () => {});
      stream.on("close", () => {
        if (status === undefined) seen.reset += 1;
        else {
          seen.answered += 1;
          seen.statuses.set(status, (seen.statuses.get(status) ?? 0) + 1);
        }
        resolve();
      });
      stream.end(body);
    });
  const deadline = performance.now() + (options.timeoutMs ?? 30_000);
  let sent = 0;
  await Promise.all(
    Array.from({ length: options.streams }, async () => {
      while (sent < options.requests && performance.now() < deadline) {
        sent += 1;
        await one();
      }
    }),
  );
  session.close();
  return seen;
}
