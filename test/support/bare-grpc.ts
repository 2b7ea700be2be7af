// gRPC calls over plain node:http2, whatever their bytes: a client library would refuse to send a
// bad length prefix, stop after the headers, or never end its request.
import http2 from "node:http2";
import { callerHeader } from "@stepgate/api";

/** How one bare call ended, as its client saw it. */
export interface BareOutcome {
  /** The `grpc-status` the server answered with; undefined if the stream ended without one. */
  status: number | undefined;
  /** The `grpc-message`, decoded. */
  message: string;
  /** The RST_STREAM code the stream ended with (NO_ERROR, 0, also when it ended cleanly). */
  rstCode: number;
  /** From the request to the stream's end, in ms. */
  heldMs: number;
}

/** What `bareCall` sends. */
export interface BareRequest {
  /** DATA after the headers (default none). */
  body?: Buffer;
  /** End the request (END_STREAM) after the body. Default true; false leaves it open. */
  end?: boolean;
  /** More request headers, e.g. `grpc-encoding` or `grpc-timeout`. */
  headers?: Record<string, string>;
}

/** A plaintext HTTP/2 session to `127.0.0.1:port`, once the server's SETTINGS arrived (its stream limit known). */
export async function connectBare(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  await new Promise((resolve) => {
    session.once("remoteSettings", resolve);
    session.once("close", resolve);
  });
  return session;
}

/** One gRPC message: the 5-byte prefix (compressed flag, length, which may lie) and `message`. */
export function grpcFrame(
  message: Uint8Array,
  options: { compressed?: boolean; declaredLength?: number } = {},
) {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt8(options.compressed ? 1 : 0, 0);
  prefix.writeUInt32BE(options.declaredLength ?? message.length, 1);
  return Buffer.concat([prefix, message]);
}

/**
 * A call of `path` as the calling service `payments`, sending `request` as it says; resolves when
 * the stream ends, however it ends (never rejects).
 */
export function bareCall(
  session: http2.ClientHttp2Session,
  path: string,
  request: BareRequest = {},
): Promise<BareOutcome> {
  const { body, end = true, headers = {} } = request;
  const started = performance.now();
  let status: number | undefined;
  let message = "";
  const read = (fields: http2.IncomingHttpHeaders) => {
    if (fields["grpc-status"] === undefined) return;
    status = Number(fields["grpc-status"]);
    message = decodeURIComponent(String(fields["grpc-message"] ?? ""));
  };
  return new Promise((resolve) => {
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(
        {
          ":method": "POST",
          ":path": path,
          "content-type": "application/grpc",
          te: "trailers",
          [callerHeader]: "payments",
          ...headers,
        },
        { endStream: end && body === undefined },
      );
    } catch {
      // The session is gone: nothing was sent.
      return resolve({ status, message, rstCode: http2.constants.NGHTTP2_CANCEL, heldMs: 0 });
    }
    stream
      .on("response", read)
      .on("trailers", read)
      .on("data", () => {});
    stream.on("error", () => {});
    stream.on("close", () =>
      resolve({ status, message, rstCode: stream.rstCode ?? 0, heldMs: performance.now() - started }),
    );
    if (body !== undefined) {
      if (end) stream.end(body);
      else stream.write(body);
    }
  });
}

/** Runs `count` calls made by `call(i)`, at most `concurrency` at once; resolves with every outcome. */
export async function bareCalls(
  count: number,
  concurrency: number,
  call: (i: number) => Promise<BareOutcome>,
): Promise<BareOutcome[]> {
  const outcomes: BareOutcome[] = [];
  let next = 0;
  const worker = async () => {
    while (next < count) outcomes.push(await call(next++));
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return outcomes;
}

/** Outcomes counted by `status message` (or how the stream ended without a status), for reports. */
export function tallyOutcomes(outcomes: readonly BareOutcome[]): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.status === undefined ? `no status, RST_STREAM ${o.rstCode}` : `${o.status} ${o.message}`;
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return tally;
}
