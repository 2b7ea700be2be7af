// The HTTP/2 abuse cases of test/http2-abuse.test.ts, each a bounded loop against 127.0.0.1.
import { setImmediate as nextTurn, setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { type BareOutcome, bareCall, connectBare, grpcFrame } from "./bare-grpc.ts";
import {
  frame,
  frameType,
  type Goaway,
  grpcRequestHeaders,
  headersFrame,
  http2Error,
  http2ErrorName,
  openRawConnection,
  type RawConnection,
  type RawConnectionOptions,
  rstStreamFrame,
  settingsFrame,
} from "./raw-http2.ts";

/** How the server ended one connection of a rapid reset. */
export interface ResetConnection {
  /** HEADERS+RST_STREAM pairs written before the server closed it (or the cap was reached). */
  pairs: number;
  /** The server's first GOAWAY, if it sent one. */
  goaway: Goaway | undefined;
}

/**
 * Rapid reset (CVE-2023-44487): on one connection after another, HEADERS of a call of `path` and at
 * once RST_STREAM CANCEL for it, 100 pairs per write, until the server closes the connection or it
 * carried `perConnection` pairs; stops after `pairs` in all (or 100 connections).
 */
export async function rapidReset(
  port: number,
  options: { pairs: number; perConnection: number; path: string },
): Promise<ResetConnection[]> {
  const headers = grpcRequestHeaders(options.path);
  const connections: ResetConnection[] = [];
  let total = 0;
  while (total < options.pairs && connections.length < 100) {
    const connection = await openRawConnection(port);
    let pairs = 0;
    let streamId = 1;
    while (!connection.socket.destroyed && pairs < options.perConnection && total < options.pairs) {
      const batch: Buffer[] = [];
      for (let i = 0; i < 100; i++, streamId += 2)
        batch.push(headersFrame(streamId, headers), rstStreamFrame(streamId));
      await connection.send(...batch);
      // The flows' client shares this event loop: let it read its answers between batches.
      await nextTurn();
      pairs += 100;
      total += 100;
    }
    await Promise.race([connection.closed, sleep(1000)]);
    connections.push({ pairs, goaway: connection.goaways[0] });
    connection.close();
  }
  return connections;
}

/** Connections held open, and when each closed (ms after it opened; undefined while open). */
export interface HeldConnections {
  connections: RawConnection[];
  closedAfterMs: (number | undefined)[];
}

/** Opens `count` connections, 100 at a time, each sending `options.opening` and then nothing. */
export async function holdConnections(
  port: number,
  count: number,
  options: RawConnectionOptions = {},
): Promise<HeldConnections> {
  const held: HeldConnections = { connections: [], closedAfterMs: [] };
  for (let i = 0; i < count; i += 100) {
    const opened = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () => openRawConnection(port, options)),
    );
    for (const connection of opened) {
      const index = held.connections.push(connection) - 1;
      const openedAt = performance.now();
      held.closedAfterMs.push(undefined);
      void connection.closed.then(() => {
        held.closedAfterMs[index] = performance.now() - openedAt;
      });
    }
  }
  return held;
}

/** How held connections ended, counted: by the server's first GOAWAY code, or without one. */
export function howConnectionsEnded(connections: readonly RawConnection[]): Record<string, number> {
  const tally: Record<string, number> = {};
  for (const c of connections) {
    const first = c.goaways[0];
    const key = !c.socket.destroyed
      ? "open"
      : first
        ? `GOAWAY ${http2ErrorName(first.code)}`
        : "closed, no GOAWAY";
    tally[key] = (tally[key] ?? 0) + 1;
  }
  return tally;
}

/** Waits until every connection has closed, or `boundMs` passed; true if all closed. */
export async function allClosed(connections: readonly RawConnection[], boundMs: number): Promise<boolean> {
  const closed = Promise.all(connections.map((c) => c.closed)).then(() => true);
  return Promise.race([closed, sleep(boundMs, false)]);
}

/**
 * Slowloris: `waves` waves of `perWave` calls of `path` every `intervalMs`, spread over `sessions`
 * connections, none of which ever finishes its request: every other one sends only its headers, the
 * rest a whole message but no END_STREAM. Resolves with how each ended once all have, or after
 * `boundMs`, when the sessions are destroyed (a call still held then ends with no status).
 */
export async function slowloris(
  port: number,
  options: {
    sessions: number;
    waves: number;
    perWave: number;
    intervalMs: number;
    path: string;
    boundMs: number;
  },
): Promise<BareOutcome[]> {
  const sessions = await Promise.all(Array.from({ length: options.sessions }, () => connectBare(port)));
  const calls: Promise<BareOutcome>[] = [];
  const message = Buffer.from([0, 0, 0, 0, 0]);
  for (let wave = 0; wave < options.waves; wave++) {
    if (wave > 0) await sleep(options.intervalMs);
    for (let i = 0; i < options.perWave; i++) {
      const session = sessions[i % sessions.length];
      if (!session) continue;
      calls.push(
        bareCall(session, options.path, i % 2 === 0 ? { end: false } : { body: message, end: false }),
      );
    }
  }
  const all = Promise.all(calls);
  await Promise.race([all, sleep(options.boundMs)]);
  for (const session of sessions) session.destroy();
  return all;
}

/** A call whose bytes cannot be decoded, and the status grpc-js answers it with. */
export interface UndecodableCall {
  name: string;
  body: Buffer;
  headers: Record<string, string>;
  status: grpc.status;
}

/** Calls with a broken gRPC frame or message, each holding `marker` (to look for in logs). */
export function undecodableCalls(marker: Buffer): UndecodableCall[] {
  const compressed = grpcFrame(marker, { compressed: true });
  return [
    {
      name: "length prefix past the end",
      body: grpcFrame(marker, { declaredLength: 100 }),
      headers: {},
      status: grpc.status.UNIMPLEMENTED,
    },
    {
      name: "length prefix over the limit",
      body: grpcFrame(marker, { declaredLength: 2 ** 32 - 1 }),
      headers: {},
      status: grpc.status.RESOURCE_EXHAUSTED,
    },
    { name: "compressed flag, no encoding", body: compressed, headers: {}, status: grpc.status.INTERNAL },
    {
      name: "gzip that is not",
      body: compressed,
      headers: { "grpc-encoding": "gzip" },
      status: grpc.status.INTERNAL,
    },
    {
      name: "unknown encoding",
      body: compressed,
      headers: { "grpc-encoding": "br" },
      status: grpc.status.UNIMPLEMENTED,
    },
    {
      name: "garbage protobuf",
      body: grpcFrame(Buffer.concat([Buffer.from([0xff, 0xff]), marker])),
      headers: {},
      status: grpc.status.INTERNAL,
    },
    { name: "half a prefix", body: Buffer.from([0, 0, 0]), headers: {}, status: grpc.status.UNIMPLEMENTED },
  ];
}

/** Frames that break HTTP/2's rules for the whole connection, and the GOAWAY code RFC 9113 asks for. */
export interface InvalidFrames {
  name: string;
  frames: Buffer[];
  code: number;
}

/** Connection errors (RFC 9113 §5.4.1), a DATA frame holding `marker`. */
export function invalidFrames(marker: Buffer): InvalidFrames[] {
  return [
    {
      name: "HEADERS on stream 0",
      frames: [headersFrame(0, grpcRequestHeaders("/x"))],
      code: http2Error.protocolError,
    },
    { name: "SETTINGS_ENABLE_PUSH 2", frames: [settingsFrame([[0x2, 2]])], code: http2Error.protocolError },
    {
      name: "SETTINGS_INITIAL_WINDOW_SIZE 2^31",
      frames: [settingsFrame([[0x4, 2 ** 31]])],
      code: http2Error.flowControlError,
    },
    {
      name: "PING of 3 bytes",
      frames: [frame(frameType.ping, 0, 0, Buffer.alloc(3))],
      code: http2Error.frameSizeError,
    },
    {
      name: "DATA on stream 0",
      frames: [frame(frameType.data, 0, 0, marker)],
      code: http2Error.protocolError,
    },
  ];
}
