import { spawn } from "node:child_process";
import { join } from "node:path";
import type { CpuSnapshot } from "../bench-cluster.ts";
import { cpuSeconds } from "../process-stats.ts";

/** The floors: node:http2 answering every request (bare-http2-server.ts), and a grpc-js server with
 * one handler that does nothing (bare-grpc-server.ts). */
export type BareKind = "http2" | "grpc-js";
const serverScripts: Record<BareKind, string> = {
  http2: join(import.meta.dirname, "bare-http2-server.ts"),
  "grpc-js": join(import.meta.dirname, "bare-grpc-server.ts"),
};

/** A bare server process answering `answer` (see BareKind). */
export interface BareHttp2 {
  address: string;
  cpu(): Promise<CpuSnapshot>;
  close(): Promise<void>;
}

/**
 * Starts a bare server of `kind` on `port`, pinned like the replicas (`cpuList`), once it listens;
 * `path` is the method the grpc-js one serves, `answer` the gRPC frame it answers with.
 */
export async function startBareServer(
  kind: BareKind,
  port: number,
  path: string,
  answer: Buffer,
  cpuList: string,
): Promise<BareHttp2> {
  const args =
    kind === "http2" ? [String(port), answer.toString("hex")] : [String(port), path, answer.toString("hex")];
  const child = spawn("taskset", ["-c", cpuList, process.execPath, serverScripts[kind], ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    void exited.then(() => reject(new Error(`the bare ${kind} server exited before listening`)));
  });
  const pid = child.pid ?? 0;
  return {
    address: `127.0.0.1:${port}`,
    cpu: async () => ({ replicas: new Map([[pid, cpuSeconds(pid)]]), stores: new Map() }),
    async close() {
      child.kill("SIGTERM");
      await exited;
    },
  };
}
