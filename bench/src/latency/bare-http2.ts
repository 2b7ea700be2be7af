import { spawn } from "node:child_process";
import { join } from "node:path";
import type { CpuSnapshot } from "../bench-cluster.ts";
import { cpuSeconds } from "../process-stats.ts";

const serverScript = join(import.meta.dirname, "bare-http2-server.ts");

/** A bare HTTP/2 server process answering `answer` to everything (see bare-http2-server.ts). */
export interface BareHttp2 {
  address: string;
  cpu(): Promise<CpuSnapshot>;
  close(): Promise<void>;
}

/** Starts the bare server on `port`, pinned like the replicas (`cpuList`), once it listens. */
export async function startBareHttp2(port: number, answer: Buffer, cpuList: string): Promise<BareHttp2> {
  const child = spawn(
    "taskset",
    ["-c", cpuList, process.execPath, serverScript, String(port), answer.toString("hex")],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const exited = new Promise((resolve) => child.once("exit", resolve));
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once("data", () => resolve());
    void exited.then(() => reject(new Error("the bare HTTP/2 server exited before listening")));
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
