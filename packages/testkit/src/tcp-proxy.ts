import { createServer, connect as netConnect, type Server, type Socket } from "node:net";

/** What a `TcpProxy` does with connections: forward them, refuse them, or swallow them. */
export type TcpProxyMode = "pass" | "refuse" | "blackhole";

/** Options of `createTcpProxy`. */
export interface TcpProxyOptions {
  /** The store behind the proxy, e.g. `{ host: "127.0.0.1", port: 5432 }`. */
  target: { host: string; port: number };
  /** The port the proxy listens on, on 127.0.0.1, kept across `refuse()` and `pass()`. Default: a free one. */
  port?: number;
  /** The mode it starts in. Default `"pass"`. */
  mode?: TcpProxyMode;
}

/** What went through the proxy since it was created. */
export interface TcpProxyCounters {
  /** Client connections accepted (refused ones never reach the proxy: the kernel refuses them). */
  connectionsAccepted: number;
  /** Client connections open now. */
  connectionsOpen: number;
  /** Client connections the proxy ended with a TCP reset (`refuse()`, a target that is down or
   * reset, or a stream that lost bytes in a blackhole, at `pass()`). */
  connectionsReset: number;
  /** Bytes forwarded from clients to the target. */
  bytesToTarget: number;
  /** Bytes forwarded from the target to clients. */
  bytesFromTarget: number;
  /** Bytes read and thrown away while blackholed, both directions together. */
  bytesDropped: number;
  /** Bytes the proxy holds now, in user space, on either side (sockets' write queues and unread
   * input): bounded by the sockets' high-water marks while passing, and 0 while blackholed. */
  bytesBuffered: number;
}

/** A loopback TCP proxy between replicas and a store, so a test can cut the network. */
export interface TcpProxy {
  /** The address the proxy listens on: always loopback. */
  readonly host: "127.0.0.1";
  /** The port it listens on, the same across `refuse()` and `pass()`. */
  readonly port: number;
  /** `127.0.0.1:<port>`. */
  readonly address: string;
  /** What it does now with connections. */
  readonly mode: TcpProxyMode;
  /** A snapshot of the counters. */
  readonly counters: TcpProxyCounters;
  /** `url` with its host and port replaced by the proxy's, e.g. `postgresql://postgres@127.0.0.1:5432/db`
   * becomes `postgresql://postgres@127.0.0.1:<port>/db`. Throws a TypeError if `url` is not a URL. */
  rewriteUrl(url: string): string;
  /** Forwards again. Connections that lost bytes in a blackhole are reset (their byte streams have a
   * hole: the client must reconnect); the others, including ones accepted while blackholed that sent
   * nothing, are connected to the target and forwarded. Listens again after `refuse()` (rejects
   * with the `listen` error, e.g. EADDRINUSE, if the port was taken meanwhile). */
  pass(): Promise<void>;
  /** A store that is down: resets (RST) every open connection on both sides and stops listening, so
   * new connections are refused by the kernel (ECONNREFUSED). Resolves once no longer listening. */
  refuse(): Promise<void>;
  /** A network partition: no reset, no answer. Keeps every connection open but reads and drops all
   * bytes in both directions, and accepts new connections without ever connecting them to the
   * target; a client's close is not passed on either (the store keeps that session until `pass()`,
   * which resets it). Nothing is queued: memory stays flat however much is sent. Clients only notice through
   * their own timeouts: the proxy's kernel acknowledges every byte, so TCP keepalive and full send
   * buffers never reveal it (unlike a real partition). Listens again after `refuse()` (rejects with
   * the `listen` error if the port was taken meanwhile). */
  blackhole(): Promise<void>;
  /** Resets every connection and stops listening. Idempotent; never rejects. */
  close(): Promise<void>;
}

interface Link {
  client: Socket;
  target: Socket | undefined;
  /** Lost bytes while blackholed: the stream is broken for good. */
  holed: boolean;
}

/**
 * Ends `socket` with a TCP reset (RST) where the kernel allows one. A socket still connecting, or
 * whose sending side is already shutting down (after `end()`, ours or the automatic one after the
 * peer's FIN), is destroyed plainly instead: libuv refuses a reset then, and Node would leave the
 * handle open, which hangs the process at exit.
 */
function abort(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.connecting || socket.writableEnded) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * Starts a TCP proxy on 127.0.0.1 (`port`, default a free one) in front of `target`. While passing,
 * each client connection gets its own connection to the target and bytes flow both ways with
 * backpressure (a slow side pauses the other, so nothing piles up); a target that cannot be reached
 * resets the client connection. Rejects with the `listen` error if the port cannot be had.
 */
export async function createTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const { target } = options;
  let mode: TcpProxyMode = options.mode ?? "pass";
  let port = options.port ?? 0;
  let server: Server | undefined;
  let closed = false;
  const links = new Set<Link>();
  const counts = {
    connectionsAccepted: 0,
    connectionsReset: 0,
    bytesToTarget: 0,
    bytesFromTarget: 0,
    bytesDropped: 0,
  };

  const reset = (link: Link) => {
    if (!links.delete(link)) return;
    if (!link.client.destroyed) counts.connectionsReset++;
    abort(link.client);
    if (link.target) abort(link.target);
  };
  // Target connections whose client went away while blackholed: the store cannot know yet, so they
  // stay open (as a server's sessions do in a partition) until `pass()`, `refuse()` or `close()`.
  const stranded = new Set<Socket>();
  const forget = (link: Link) => {
    if (!links.delete(link)) return;
    link.client.destroy();
    const t = link.target;
    if (t && !t.destroyed && mode === "blackhole") {
      stranded.add(t);
      t.once("close", () => stranded.delete(t));
    } else t?.destroy();
  };
  const resetStranded = () => {
    for (const t of stranded) abort(t);
    stranded.clear();
  };

  /** Forwards `from`'s bytes to `to` while passing and drops them while blackholed. */
  const pipe = (link: Link, from: Socket, to: () => Socket | undefined, toTarget: boolean) => {
    from.on("data", (chunk: Buffer) => {
      const out = to();
      if (mode !== "pass" || !out || out.destroyed) {
        counts.bytesDropped += chunk.length;
        link.holed = true;
        return;
      }
      if (toTarget) counts.bytesToTarget += chunk.length;
      else counts.bytesFromTarget += chunk.length;
      if (!out.write(chunk)) {
        from.pause();
        out.once("drain", () => from.resume());
      }
    });
    from.on("end", () => {
      // A clean close passes on while forwarding; a blackhole swallows it like everything else.
      if (mode === "pass") to()?.end();
      else link.holed = true;
    });
  };

  const connectTarget = (link: Link) => {
    const t = netConnect({ host: target.host, port: target.port });
    t.setNoDelay(true);
    link.target = t;
    pipe(link, t, () => link.client, false);
    // While blackholed the target's fate is hidden too: the client learns of it at `pass()`.
    t.on("error", () => {
      if (mode === "pass") reset(link);
      else link.holed = true;
    });
    t.on("close", () => {
      if (!links.has(link)) return;
      if (mode === "pass") link.client.end();
      else link.holed = true;
    });
  };

  const accept = (client: Socket) => {
    if (mode === "refuse") {
      abort(client);
      return;
    }
    counts.connectionsAccepted++;
    client.setNoDelay(true);
    const link: Link = { client, target: undefined, holed: false };
    links.add(link);
    pipe(link, client, () => link.target, true);
    client.on("error", () => reset(link));
    client.on("close", () => forget(link));
    if (mode === "pass") connectTarget(link);
  };

  const listen = () =>
    new Promise<void>((resolve, reject) => {
      const s = createServer({ noDelay: true }, accept);
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        s.off("error", reject);
        // A failing accept (e.g. EMFILE) must not crash the test; that client sees the failure.
        s.on("error", () => {});
        const address = s.address();
        if (typeof address === "object" && address) port = address.port;
        server = s;
        resolve();
      });
    });
  const unlisten = () =>
    new Promise<void>((resolve) => {
      const s = server;
      server = undefined;
      if (!s) return resolve();
      // Closing stops the accepting at once; the callback waits for connections we reset anyway.
      s.close(() => resolve());
      for (const link of [...links]) reset(link);
      resetStranded();
    });

  // Listening once also fixes the port, which `refuse()` keeps for the next `pass()`.
  await listen();
  if (mode === "refuse") await unlisten();

  return {
    host: "127.0.0.1",
    get port() {
      return port;
    },
    get address() {
      return `127.0.0.1:${port}`;
    },
    get mode() {
      return mode;
    },
    get counters() {
      let buffered = 0;
      for (const link of links) {
        for (const s of [link.client, link.target]) if (s) buffered += s.writableLength + s.readableLength;
      }
      return { ...counts, connectionsOpen: links.size, bytesBuffered: buffered };
    },
    rewriteUrl(url: string) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    async pass() {
      if (closed) return;
      const was = mode;
      mode = "pass";
      if (was === "refuse") await listen();
      resetStranded();
      for (const link of [...links]) {
        if (link.holed || link.target?.destroyed) reset(link);
        else if (!link.target) connectTarget(link);
      }
    },
    async refuse() {
      mode = "refuse";
      await unlisten();
    },
    async blackhole() {
      if (closed) return;
      const was = mode;
      mode = "blackhole";
      if (was === "refuse") await listen();
      // Anything paused for backpressure must keep being read (and dropped), not queued.
      for (const link of links) {
        link.client.resume();
        link.target?.resume();
      }
    },
    async close() {
      closed = true;
      mode = "refuse";
      await unlisten();
    },
  };
}
