import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** h2load's version line, or undefined when it is not installed (Debian: nghttp2-client). */
export function h2loadVersion(): string | undefined {
  try {
    return execFileSync("h2load", ["--version"], { encoding: "utf8" }).trim();
  } catch {
    return undefined;
  }
}

/** One h2load run against one replica: the same request over and over. */
export interface H2loadRun {
  /** `127.0.0.1:<port>` of the replica. */
  address: string;
  /** `/<package>.<Service>/<Method>`. */
  path: string;
  /** The request body, a gRPC frame, sent with every request. */
  body: Buffer;
  headers: Record<string, string>;
  /** HTTP/2 connections (h2load `-c`). */
  clients: number;
  /** Streams in flight per connection at most (`-m`). */
  streams: number;
  /** The measured duration in seconds (`-D`). */
  seconds: number;
  /** Requests per second over all connections (`--rps` is per connection); none: as fast as it can. */
  ratePerSecond?: number;
  /** Cores h2load runs on (`taskset -c`), away from the replica's. */
  cpuList?: string;
  /** Write and read h2load's per-request log (default true); a flood that needs only the summary
   * leaves it out, sparing the generator's core the writes and this process the parsing. */
  perRequestLog?: boolean;
}

/** What h2load printed and logged. Latencies are h2load's own: from a request's send to its
 * response's end, in ms; a request h2load could not send on time waits unlogged (see bench/README.md). */
export interface H2loadResult {
  /** h2load's own `req/s` over the measured duration. */
  requestsPerSecond: number;
  /** How long h2load ran, in seconds. */
  seconds: number;
  /** Requests done, and those with a 2xx HTTP status (gRPC answers errors with 200 too). */
  done: number;
  status2xx: number;
  /** Requests failed, errored or timed out in h2load's count (connection-level trouble). */
  failed: number;
  /** DATA bytes received: divided by a probe's answer size, how many answers had a body. */
  dataBytes: number;
  /** Per-request latency from `--log-file`, in ms, sorted (empty without `perRequestLog`). */
  latenciesMs: Float64Array;
  /** Each request's send, ms since the epoch, sorted (for `sendLag`). */
  startsMs: Float64Array;
  /** h2load's command line, for the JSON. */
  command: string;
}

/** Runs h2load once (pinned with taskset when `cpuList` is set) and parses its summary and log. */
export async function runH2load(run: H2loadRun): Promise<H2loadResult> {
  const dir = mkdtempSync(join(tmpdir(), "stepgate-h2load-"));
  try {
    const bodyFile = join(dir, "body");
    const logFile = join(dir, "log");
    writeFileSync(bodyFile, run.body);
    const perClient = run.ratePerSecond === undefined ? undefined : run.ratePerSecond / run.clients;
    const args = [
      `--clients=${run.clients}`,
      "--threads=1",
      `--max-concurrent-streams=${run.streams}`,
      // h2load takes whole numbers with a unit. No --warm-up-time: its requests would count in the
      // traffic figure (and so in the answers-with-a-body check) but not in the log.
      `--duration=${Math.max(1, Math.round(run.seconds * 1000))}ms`,
      ...(perClient === undefined ? [] : [`--rps=${perClient.toFixed(3)}`]),
      `--data=${bodyFile}`,
      ...(run.perRequestLog === false ? [] : [`--log-file=${logFile}`]),
      ...Object.entries(run.headers).map(([name, value]) => `--header=${name}: ${value}`),
      `http://${run.address}${run.path}`,
    ];
    const [command, argv] =
      run.cpuList === undefined ? ["h2load", args] : ["taskset", ["-c", run.cpuList, "h2load", ...args]];
    const output = await new Promise<string>((resolve, reject) =>
      execFile(command, argv, { maxBuffer: 16 << 20 }, (error, stdout, stderr) =>
        error ? reject(new Error(`h2load failed: ${error.message}\n${stderr}${stdout}`)) : resolve(stdout),
      ),
    );
    return {
      ...parseSummary(output),
      ...readLog(logFile),
      command: [command, ...argv].join(" "),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The figures of h2load's summary: `finished in`, `requests:`, `status codes:`, `traffic:`. */
export function parseSummary(output: string): Omit<H2loadResult, "latenciesMs" | "startsMs" | "command"> {
  const match = (re: RegExp) => re.exec(output) ?? undefined;
  const finished = match(/finished in ([\d.]+)(m?s), ([\d.]+) req\/s/);
  const requests = match(
    /requests: \d+ total, \d+ started, (\d+) done, \d+ succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/,
  );
  const codes = match(/status codes: (\d+) 2xx/);
  const traffic = match(/traffic: .*?, .*? \((\d+)\) data/);
  if (!finished || !requests || !codes) throw new Error(`h2load printed no summary:\n${output}`);
  const n = (s: string | undefined) => Number(s ?? 0);
  return {
    requestsPerSecond: n(finished[3]),
    seconds: n(finished[1]) / (finished[2] === "ms" ? 1000 : 1),
    done: n(requests[1]),
    status2xx: n(codes[1]),
    failed: n(requests[2]) + n(requests[3]) + n(requests[4]),
    dataBytes: n(traffic?.[1]),
  };
}

/** `--log-file` lines: start (µs since the epoch), HTTP status, µs to the response's end. */
function readLog(file: string): { latenciesMs: Float64Array; startsMs: Float64Array } {
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return { latenciesMs: new Float64Array(0), startsMs: new Float64Array(0) };
  }
  const latencies: number[] = [];
  const starts: number[] = [];
  for (const line of text.split("\n")) {
    const [start, , micros] = line.split("\t").map(Number);
    if (line === "" || !Number.isFinite(micros) || !Number.isFinite(start)) continue;
    latencies.push((micros ?? 0) / 1000);
    starts.push((start ?? 0) / 1000);
  }
  return { latenciesMs: Float64Array.from(latencies).sort(), startsMs: Float64Array.from(starts).sort() };
}

/**
 * How late h2load sent its requests against an even schedule at `ratePerSecond` from its first
 * send, in ms: request i (in send order) was due `i / rate` after the first. h2load times a request
 * from its send, so a request it sent late hides that wait from the latency: this says how much.
 * The p99 and the largest lag; 0 when it kept up.
 */
export function sendLag(startsMs: Float64Array, ratePerSecond: number): { p99: number; max: number } {
  const first = startsMs[0];
  if (first === undefined || !(ratePerSecond > 0)) return { p99: 0, max: 0 };
  const lags = Float64Array.from(startsMs, (t, i) =>
    Math.max(0, t - first - (i * 1000) / ratePerSecond),
  ).sort();
  return { p99: lags[Math.ceil(lags.length * 0.99) - 1] ?? 0, max: lags[lags.length - 1] ?? 0 };
}
