// The Sentinel connection against a fake sentinel that answers slowly and announces failovers on
// demand, in front of the test Redis: the reconnection race ioredis loses, deterministically.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Socket } from "node:net";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { redisUrl } from "@stepgate/testkit/test-redis-prefix";
import { Redis } from "ioredis";
import { connectRedis, keepConnecting } from "./redis-connection.ts";

const bulk = (s: string) => `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
const array = (items: string[]) => `*${items.length}\r\n${items.map(bulk).join("")}`;

/** One RESP command (an array of bulk strings) at the start of `buffer`, and its length in bytes. */
function parseCommand(buffer: Buffer): { args: string[]; length: number } | undefined {
  const text = buffer.toString("latin1");
  const head = /^\*(\d+)\r\n/.exec(text);
  if (!head) return undefined;
  let at = head[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(head[1]); i++) {
    const size = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!size) return undefined;
    const start = at + size[0].length;
    if (text.length < start + Number(size[1]) + 2) return undefined;
    args.push(text.slice(start, start + Number(size[1])));
    at = start + Number(size[1]) + 2;
  }
  return { args, length: at };
}

/**
 * A sentinel that names `master` as the primary, `delayMs` after being asked, and publishes a
 * +switch-master to its subscribers on `announce()`. Speaks RESP2 only (HELLO 3 is refused).
 */
async function startFakeSentinel(master: { host: string; port: number }) {
  const subscribers = new Set<Socket>();
  const sockets = new Set<Socket>();
  let asked: (() => void) | undefined;
  const state = { delayMs: 0 };
  const answer = (socket: Socket, args: string[]) => {
    const [command = "", sub = ""] = args.map((a) => a.toLowerCase());
    if (command === "hello") return socket.write("-NOPROTO unsupported protocol version\r\n");
    if (command === "subscribe") {
      subscribers.add(socket);
      return socket.write(`*3\r\n${bulk("subscribe")}${bulk(args[1] ?? "")}:1\r\n`);
    }
    if (command === "sentinel" && sub === "get-master-addr-by-name") {
      asked?.();
      const reply = array([master.host, String(master.port)]);
      if (state.delayMs === 0) return socket.write(reply);
      return setTimeout(() => socket.writable && socket.write(reply), state.delayMs);
    }
    if (command === "sentinel" && sub === "sentinels") return socket.write("*0\r\n");
    return socket.write("+OK\r\n");
  };
  const server = createServer((socket) => {
    sockets.add(socket);
    let buffer = Buffer.alloc(0);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (let c = parseCommand(buffer); c; c = parseCommand(buffer)) {
        buffer = buffer.subarray(c.length);
        answer(socket, c.args);
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      sockets.delete(socket);
      subscribers.delete(socket);
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  return {
    port,
    state,
    subscribers: () => subscribers.size,
    /** Resolves at the next get-master-addr-by-name. */
    nextAsk: () => new Promise<void>((resolve) => (asked = resolve)),
    announce() {
      const payload = `stepgate ${master.host} ${master.port} ${master.host} ${master.port}`;
      for (const s of subscribers) s.write(array(["message", "+switch-master", payload]));
    },
    async close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

const until = async (done: () => boolean, ms: number) => {
  const end = Date.now() + ms;
  while (!done() && Date.now() < end) await sleep(10);
  return done();
};

describe("Redis connection through Sentinel", () => {
  const cleanUps: (() => Promise<unknown>)[] = [];
  after(async () => {
    for (const c of cleanUps.reverse()) await c();
  });

  it("connects again after ioredis gives up because a failover was announced while it asked a sentinel", async () => {
    const url = new URL(redisUrl);
    const sentinel = await startFakeSentinel({ host: url.hostname, port: Number(url.port || 6379) });
    cleanUps.push(() => sentinel.close());
    const redis = connectRedis(
      {
        kind: "sentinel",
        sentinels: [{ host: "127.0.0.1", port: sentinel.port }],
        masterName: "stepgate",
        ...{ username: undefined, password: undefined },
        ...{ sentinelUsername: undefined, sentinelPassword: undefined, tls: false },
      },
      { keyPrefix: "sentinel-test:", connectTimeoutMs: 1000, commandTimeoutMs: 1000 },
    );
    redis.on("error", () => {});
    let closing = false;
    let restarts = 0;
    keepConnecting(
      redis,
      () => closing,
      () => restarts++,
    );
    cleanUps.push(async () => {
      closing = true;
      redis.disconnect();
    });
    assert.ok(await until(() => redis.status === "ready" && sentinel.subscribers() > 0, 5000));
    // The connection drops; the reconnection asks the sentinel, which takes its time to answer.
    sentinel.state.delayMs = 300;
    const asking = sentinel.nextAsk();
    const admin = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    cleanUps.push(() => admin.quit());
    await admin.client("KILL", "ID", String(await redis.client("ID")));
    await asking;
    // The failover detector hears +switch-master meanwhile: ioredis ends instead of reconnecting.
    sentinel.announce();
    assert.ok(await until(() => restarts > 0, 2000), "ioredis ended for good: the race was hit");
    sentinel.state.delayMs = 0;
    assert.ok(await until(() => redis.status === "ready", 3000), `connected again (${redis.status})`);
    assert.equal(await redis.ping(), "PONG");
  });
});
