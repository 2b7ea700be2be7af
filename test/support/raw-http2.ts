// Hand-written HTTP/2 frames (RFC 9113) for abuse tests: what a well-behaved client library never
// sends (a reset right after each HEADERS, HEADERS on stream 0, a bad SETTINGS value, a half preface).
import net from "node:net";

/** The frame types these tests send or read (RFC 9113 §6). */
export const frameType = {
  data: 0x0,
  headers: 0x1,
  rstStream: 0x3,
  settings: 0x4,
  ping: 0x6,
  goaway: 0x7,
} as const;

/** Frame flags: END_STREAM on DATA and HEADERS, END_HEADERS on HEADERS, ACK on SETTINGS and PING. */
export const frameFlag = { endStream: 0x1, ack: 0x1, endHeaders: 0x4 } as const;

/** HTTP/2 error codes (RFC 9113 §7) by name, and the names by code for reports. */
export const http2Error = {
  noError: 0x0,
  protocolError: 0x1,
  internalError: 0x2,
  flowControlError: 0x3,
  frameSizeError: 0x6,
  cancel: 0x8,
  enhanceYourCalm: 0xb,
} as const;

/** The name of an HTTP/2 error code, e.g. `ENHANCE_YOUR_CALM`; the number for one not listed. */
export function http2ErrorName(code: number): string {
  const entry = Object.entries(http2Error).find(([, value]) => value === code);
  return entry ? entry[0].replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase() : String(code);
}

/** What every HTTP/2 client sends first. */
export const clientPreface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** One frame: the 9-byte header (length, type, flags, stream id) and its payload. */
export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header.writeUInt8(type, 3);
  header.writeUInt8(flags, 4);
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

/** A SETTINGS frame with `[identifier, value]` pairs (none: the empty one every client sends). */
export function settingsFrame(settings: readonly (readonly [number, number])[] = []): Buffer {
  const payload = Buffer.alloc(settings.length * 6);
  settings.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(frameType.settings, 0, 0, payload);
}

/** An HPACK integer with an `prefixBits`-bit prefix (RFC 7541 §5.1), the prefix's other bits 0. */
function hpackInteger(value: number, prefixBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([value]);
  const bytes = [max];
  let rest = value - max;
  while (rest >= 128) {
    bytes.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/** A plain (not Huffman-coded) HPACK string literal. */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, "latin1");
  return Buffer.concat([hpackInteger(bytes.length, 7), bytes]);
}

/**
 * A header block of literal fields without indexing (RFC 7541 §6.2.2): no dynamic table, so every
 * block decodes alone, however many the server dropped.
 */
export function headerBlock(headers: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(
    headers.flatMap(([name, value]) => [Buffer.from([0]), hpackString(name), hpackString(value)]),
  );
}

/** A HEADERS frame carrying all of `headers` (END_HEADERS), with END_STREAM if `endStream`. */
export function headersFrame(
  streamId: number,
  headers: readonly (readonly [string, string])[],
  endStream = false,
) {
  const flags = frameFlag.endHeaders | (endStream ? frameFlag.endStream : 0);
  return frame(frameType.headers, flags, streamId, headerBlock(headers));
}

/** An RST_STREAM frame ending `streamId` with `code`. */
export function rstStreamFrame(streamId: number, code: number = http2Error.cancel): Buffer {
  const payload = Buffer.alloc(4);
  payload.writeUInt32BE(code);
  return frame(frameType.rstStream, 0, streamId, payload);
}

/** The request headers of a gRPC call to `path` (`/package.Service/Method`) from `caller`. */
export function grpcRequestHeaders(path: string, caller = "payments"): [string, string][] {
  return [
    [":method", "POST"],
    [":scheme", "http"],
    [":path", path],
    [":authority", "stepgate"],
    ["content-type", "application/grpc"],
    ["te", "trailers"],
    ["stepgate-caller", caller],
  ];
}

/** A GOAWAY the server sent: its error code and the last stream it will have processed. */
export interface Goaway {
  code: number;
  lastStreamId: number;
}

/** One raw TCP connection speaking HTTP/2 frames to a server. */
export interface RawConnection {
  readonly socket: net.Socket;
  /** Every GOAWAY received so far, in order. */
  readonly goaways: Goaway[];
  /** Frames received so far, by type (e.g. how many RST_STREAM the server sent). */
  readonly received: Map<number, number>;
  /** Writes frames; resolves once the socket takes more (at once unless its buffer is full). */
  send(...frames: Buffer[]): Promise<void>;
  /** Resolves when the socket has closed, however that happened; never rejects. */
  readonly closed: Promise<void>;
  /** Destroys the socket. */
  close(): void;
}

/** How `openRawConnection` starts and behaves. */
export interface RawConnectionOptions {
  /** What to send first: the preface and an empty SETTINGS (default), or exactly these bytes. */
  opening?: Buffer;
  /** Acknowledge the server's SETTINGS and answer its PINGs, as a live client does. Default true. */
  polite?: boolean;
}

/**
 * Connects to `127.0.0.1:port` and sends `opening`; resolves once connected. Frames the server sends
 * are parsed only enough to count them, record GOAWAYs and (when polite) acknowledge SETTINGS and
 * PING; header blocks are not decoded. Socket errors end the connection (`closed`), never throw.
 */
export function openRawConnection(port: number, options: RawConnectionOptions = {}): Promise<RawConnection> {
  const { opening = Buffer.concat([clientPreface, settingsFrame()]), polite = true } = options;
  const socket = net.connect({ host: "127.0.0.1", port });
  socket.setNoDelay(true);
  const goaways: Goaway[] = [];
  const received = new Map<number, number>();
  const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
  socket.on("error", () => {});
  let pending: Buffer = Buffer.alloc(0);
  const onFrame = (type: number, flags: number, payload: Buffer) => {
    received.set(type, (received.get(type) ?? 0) + 1);
    if (type === frameType.goaway && payload.length >= 8) {
      goaways.push({ lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) });
    }
    if (!polite || (flags & frameFlag.ack) !== 0 || socket.destroyed) return;
    if (type === frameType.settings) socket.write(frame(frameType.settings, frameFlag.ack, 0));
    if (type === frameType.ping) socket.write(frame(frameType.ping, frameFlag.ack, 0, payload));
  };
  socket.on("data", (chunk: Buffer) => {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 9) {
      const length = pending.readUIntBE(0, 3);
      if (pending.length < 9 + length) break;
      onFrame(pending.readUInt8(3), pending.readUInt8(4), pending.subarray(9, 9 + length));
      pending = pending.subarray(9 + length);
    }
  });
  const connection: RawConnection = {
    socket,
    goaways,
    received,
    closed,
    send: (...frames) =>
      new Promise((resolve) => {
        if (socket.destroyed || socket.write(Buffer.concat(frames))) return resolve();
        const done = () => {
          socket.off("drain", done);
          socket.off("close", done);
          resolve();
        };
        socket.once("drain", done).once("close", done);
      }),
    close: () => void socket.destroy(),
  };
  return new Promise((resolve) => {
    socket.once("connect", () => {
      socket.write(opening);
      resolve(connection);
    });
    // A refused connection still resolves: `closed` tells the caller.
    socket.once("close", () => resolve(connection));
  });
}
