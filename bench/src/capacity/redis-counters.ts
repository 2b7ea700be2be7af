import { connect, type Socket } from "node:net";

/** Commands, reads and bytes of client traffic, as Redis counts them. */
export interface RedisTraffic {
  /** Calls by command name as commandstats names them (`evalsha`, `client|setname`, ...): a command
   * run inside a script or a MULTI counts under its own name as well. */
  commands: Record<string, number>;
  /** Read events on client sockets (`total_reads_processed`): about one per round trip. */
  reads: number;
  /** Bytes received from clients and sent to them. */
  inputBytes: number;
  outputBytes: number;
}

/** Redis's own counters at one moment (INFO stats, cpu and commandstats). */
export interface RedisCounters extends RedisTraffic {
  /** CPU seconds of the main thread, user + system. */
  cpuSeconds: number;
  /** What of it was the probe's own traffic (all zero in a difference). */
  probe: RedisTraffic;
}

/** One connection of the bench's own to Redis. */
export interface RedisProbe {
  /** Redis's counters now (one INFO). */
  counters(): Promise<RedisCounters>;
  /** Sends any command and resolves with its reply as text. */
  command(...args: string[]): Promise<string>;
  /** What happened between two snapshots taken by this probe, without the probe's own commands. */
  between(before: RedisCounters, after: RedisCounters): RedisCounters;
  close(): void;
}

const noTraffic = (): RedisTraffic => ({ commands: {}, reads: 0, inputBytes: 0, outputBytes: 0 });

const encode = (args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;

/** The length of the first whole RESP reply in `buf` (bulk, integer, simple or error), or -1. */
function replyLength(buf: Buffer): number {
  const eol = buf.indexOf("\r\n");
  if (eol < 0) return -1;
  if (buf[0] !== 0x24) return eol + 2; // "$": a bulk string; anything else is one line
  const size = Number(buf.subarray(1, eol).toString());
  if (size < 0) return eol + 2;
  return buf.length >= eol + 2 + size + 2 ? eol + 2 + size + 2 : -1;
}

/** Opens a probe on `redisUrl` (`redis://host:port`, no auth). */
export async function openRedisProbe(redisUrl: string): Promise<RedisProbe> {
  const url = new URL(redisUrl);
  const socket: Socket = connect(Number(url.port || 6379), url.hostname);
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  let buffered = Buffer.alloc(0);
  let waiting: ((reply: Buffer) => void) | undefined;
  socket.on("data", (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    const length = replyLength(buffered);
    if (length < 0 || !waiting) return;
    const reply = buffered.subarray(0, length);
    buffered = buffered.subarray(length);
    waiting(reply);
  });
  /** Sends one command and resolves with the raw reply; calls must not overlap. */
  const raw = (request: string) =>
    new Promise<Buffer>((resolve) => {
      waiting = resolve;
      socket.write(request);
    });
  // The probe's traffic so far. Redis counts a command's read and request bytes before running it,
  // the command and its reply after: an INFO shows its own read, not itself.
  const own = noTraffic();
  const send = async (args: string[]) => {
    const request = encode(args);
    own.reads += 1;
    own.inputBytes += Buffer.byteLength(request);
    const seen = { ...own, commands: { ...own.commands } };
    const reply = await raw(request);
    const name = (args[0] ?? "").toLowerCase();
    own.commands[name] = (own.commands[name] ?? 0) + 1;
    own.outputBytes += reply.length;
    return { reply, seen };
  };
  return {
    async counters() {
      const { reply, seen } = await send(["INFO", "stats", "cpu", "commandstats"]);
      const text = reply.toString();
      const field = (name: string) => Number(new RegExp(`^${name}:(.*)$`, "m").exec(text)?.[1] ?? 0);
      const commands: Record<string, number> = {};
      for (const m of text.matchAll(/^cmdstat_(\S+?):calls=(\d+)/gm)) commands[m[1] ?? ""] = Number(m[2]);
      return {
        commands,
        reads: field("total_reads_processed"),
        inputBytes: field("total_net_input_bytes"),
        outputBytes: field("total_net_output_bytes"),
        cpuSeconds: field("used_cpu_user_main_thread") + field("used_cpu_sys_main_thread"),
        probe: seen,
      };
    },
    async command(...args) {
      const reply = (await send(args)).reply.toString();
      return reply.slice(reply.indexOf("\r\n") + 2).trim() || reply.slice(1).trim();
    },
    between(before, after) {
      const mine = (name: string) => (after.probe.commands[name] ?? 0) - (before.probe.commands[name] ?? 0);
      const commands: Record<string, number> = {};
      for (const [name, calls] of Object.entries(after.commands)) {
        const made = calls - (before.commands[name] ?? 0) - mine(name);
        if (made !== 0) commands[name] = made;
      }
      const delta = (field: "reads" | "inputBytes" | "outputBytes") =>
        after[field] - before[field] - (after.probe[field] - before.probe[field]);
      return {
        commands,
        reads: delta("reads"),
        inputBytes: delta("inputBytes"),
        outputBytes: delta("outputBytes"),
        cpuSeconds: after.cpuSeconds - before.cpuSeconds,
        probe: noTraffic(),
      };
    },
    close: () => socket.destroy(),
  };
}
