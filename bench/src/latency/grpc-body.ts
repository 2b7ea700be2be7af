import { connect } from "node:http2";
import { callerHeader } from "@stepgate/api";

/**
 * A protobuf message whose fields are all strings, by field number: enough for the requests h2load
 * repeats (NoopRequest, StepUpRequest, CheckGrantRequest, GetJwksRequest), encoded by hand so the
 * body is fixed before the load starts.
 */
export function encodeStrings(fields: Record<number, string>): Buffer {
  const parts: Buffer[] = [];
  for (const [number, value] of Object.entries(fields)) {
    const bytes = Buffer.from(value, "utf8");
    parts.push(varint((Number(number) << 3) | 2), varint(bytes.length), bytes);
  }
  return Buffer.concat(parts);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let rest = n;
  while (rest > 0x7f) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return Buffer.from(out);
}

/** A gRPC length-prefixed message: 1 byte 0 (not compressed), 4 bytes big-endian length, the bytes. */
export function grpcFrame(message: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(message.length, 1);
  return Buffer.concat([head, message]);
}

/** The request headers every fixed-body call sends (h2load `-H`, the probe below). */
export const grpcHeaders = (caller: string): Record<string, string> => ({
  "content-type": "application/grpc",
  te: "trailers",
  [callerHeader]: caller,
});

/** What one call with a prepared body answered: its grpc-status, and the response body's bytes. */
export interface ProbeAnswer {
  grpcStatus: string;
  grpcMessage: string;
  /** DATA bytes of the response: the gRPC frame(s) of the answer; h2load counts the same bytes. */
  bodyBytes: number;
  body: Buffer;
}

/**
 * Sends `body` to `path` once over a fresh HTTP/2 connection, as h2load will, and reads the gRPC
 * status from the trailers (or the headers, for a trailers-only answer). h2load counts only HTTP
 * status codes, so this is how a bench run knows the body it repeats is answered with OK.
 */
export async function probeGrpc(
  address: string,
  path: string,
  body: Buffer,
  headers: Record<string, string>,
): Promise<ProbeAnswer> {
  const session = connect(`http://${address}`);
  try {
    return await new Promise<ProbeAnswer>((resolve, reject) => {
      const stream = session.request({ ":method": "POST", ":path": path, ...headers });
      const chunks: Buffer[] = [];
      let status = { grpcStatus: "", grpcMessage: "" };
      const take = (h: Record<string, unknown>) => {
        if (h["grpc-status"] !== undefined)
          status = { grpcStatus: String(h["grpc-status"]), grpcMessage: String(h["grpc-message"] ?? "") };
      };
      stream.on("response", take);
      stream.on("trailers", take);
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("error", reject);
      stream.on("end", () => {
        const all = Buffer.concat(chunks);
        resolve({ ...status, bodyBytes: all.length, body: all });
      });
      stream.end(body);
    });
  } finally {
    session.close();
  }
}
