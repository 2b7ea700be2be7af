// `buf curl` (Go, connect-go's gRPC protocol): an independent gRPC client sharing no code with Stepgate.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";

const buf = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

export interface BufResult {
  /** The exit code: 0, below 8 for a usage or client error, or the gRPC code shifted left by 3. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `buf curl` with the gRPC protocol over h2c; never rejects, never outlives its timeout. */
export function bufCurl(args: string[]): Promise<BufResult> {
  return new Promise((resolve, reject) => {
    execFile(
      buf,
      ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "--timeout", "20s", ...args],
      {
        timeout: 30_000,
        maxBuffer: 1 << 20,
        env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "" },
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== "number") {
          reject(new Error(`buf curl did not exit normally (${error.signal ?? error.code}): ${stderr}`));
          return;
        }
        resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
      },
    );
  });
}
