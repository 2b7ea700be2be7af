import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./free-port.ts";
import { keepAliveUntil, startOrphanReaper } from "./orphan-reaper.ts";

/** One PostgreSQL server behind the proxy. */
export interface HaproxyServer {
  name: string;
  port: number;
  /** Used only while every server that is not a backup is down (HAProxy `backup`). */
  backup?: boolean;
}

/** Options of `startOwnHaproxy`; times are in ms. */
export interface OwnHaproxyOptions {
  servers: HaproxyServer[];
  /** How often each server is checked (`inter`), in ms. Default 200. */
  checkIntervalMs?: number;
  /** Failed checks before a server is down (`fall`). Default 2. */
  fall?: number;
}

/** HAProxy on loopback in TCP mode: the stable PostgreSQL endpoint of a primary and its standby. */
export interface OwnHaproxy {
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's. */
  rewriteUrl(url: string): string;
  /** The server connections go to now (HAProxy's stats socket), or undefined if none is up. */
  activeServer(): Promise<string | undefined>;
  /** SIGKILLs HAProxy and removes its folder. Idempotent; never rejects. */
  destroy(): Promise<void>;
}

/**
 * Starts `haproxy -db` (foreground) with one TCP frontend on 127.0.0.1 and one backend: the
 * servers, checked with `option pgsql-check` every `checkIntervalMs`; a server marked down has its
 * sessions shut (`on-marked-down shutdown-sessions`), so clients reconnect at once, and a backup
 * takes new connections while no other server is up. This is the layout of a repmgr- or
 * keepalived-style deployment; Patroni's HAProxy checks its REST API (`/primary`) instead, and a
 * Kubernetes operator repoints a Service. Rejects if HAProxy does not listen within 5 s.
 */
export async function startOwnHaproxy(options: OwnHaproxyOptions): Promise<OwnHaproxy> {
  const { checkIntervalMs = 200, fall = 2 } = options;
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "stepgate-haproxy-"));
  const pidFile = join(dir, "haproxy.pid");
  const stats = join(dir, "stats.sock");
  const config = [
    "global",
    "  maxconn 500",
    `  stats socket ${stats} mode 600 level admin`,
    "defaults",
    "  mode tcp",
    "  timeout connect 1s",
    "  timeout client 1h",
    "  timeout server 1h",
    "frontend postgresql",
    `  bind 127.0.0.1:${port}`,
    "  default_backend primary",
    "backend primary",
    "  option pgsql-check user postgres",
    `  default-server inter ${checkIntervalMs} fall ${fall} rise 1 on-marked-down shutdown-sessions`,
    ...options.servers.map((s) => `  server ${s.name} 127.0.0.1:${s.port} check${s.backup ? " backup" : ""}`),
  ].join("\n");
  const configFile = join(dir, "haproxy.cfg");
  writeFileSync(configFile, `${config}\n`);
  const reaper = startOrphanReaper({ processes: [{ pidFile, comm: "haproxy" }], removeDir: dir });
  const child: ChildProcess = spawn("haproxy", ["-db", "-f", configFile], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let errors = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    errors = (errors + chunk.toString("utf8")).slice(-4000);
  });
  child.unref();
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => resolve());
  });
  if (child.pid !== undefined) writeFileSync(pidFile, `${child.pid}\n`);
  const destroy = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await keepAliveUntil(exited);
    reaper.reapNow();
    reaper.dispose();
  };
  const deadline = Date.now() + 5000;
  while (!(await listening(port))) {
    if (Date.now() > deadline || child.exitCode !== null) {
      await destroy();
      throw new Error(`haproxy did not listen on ${port}: ${errors}`);
    }
    await sleep(50);
  }
  let destroyed: Promise<void> | undefined;
  return {
    port,
    rewriteUrl(url) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    activeServer: () => activeServer(stats),
    destroy: () => (destroyed ??= destroy()),
  };
}

/** True if something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** `show servers state` over the stats socket: the first server of the backend that is UP (state 2),
 * non-backup servers first as HAProxy chooses. */
async function activeServer(socketPath: string): Promise<string | undefined> {
  const text = await new Promise<string>((resolve) => {
    let out = "";
    const socket = connect({ path: socketPath });
    socket.setTimeout(1000, () => socket.destroy());
    socket.once("connect", () => socket.write("show servers state primary\n"));
    socket.on("data", (d: Buffer) => {
      out += d.toString("utf8");
    });
    socket.once("close", () => resolve(out));
    socket.once("error", () => resolve(out));
  });
  const rows = text
    .split("\n")
    .filter((l) => /^\d/.test(l))
    .map((l) => l.split(" "));
  // Columns: be_id be_name srv_id srv_name srv_addr srv_op_state ...; srv_op_state 2 = running.
  const up = rows.filter((r) => r[5] === "2").map((r) => r[3] as string);
  return up[0];
}
