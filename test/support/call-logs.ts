import assert from "node:assert/strict";
import type { Harness } from "./stepgate.ts";

/**
 * The server's one log line per call (rpc/call-accounting.ts): `"call"`, or `"call failed"` when a
 * handler threw. Health checks are logged at debug and left out here.
 */
export interface CallLine {
  level: string;
  msg: string;
  rpc: string;
  status: string;
  ms: number;
}

/**
 * Runs `calls` and returns the log lines the server wrote meanwhile, and only those: the lines a
 * test asserts over are the ones its own calls produced, never what earlier tests left behind.
 */
export async function logsOf(h: Harness, calls: () => Promise<unknown>): Promise<string[]> {
  const from = h.logs.length;
  await calls();
  return h.logs.slice(from);
}

/** The per-call lines among `lines`, in order. */
export function callLines(lines: string[]): CallLine[] {
  return lines
    .map((line) => JSON.parse(line) as Partial<CallLine>)
    .filter((line): line is CallLine => line.msg === "call" || line.msg === "call failed")
    .filter((line) => line.level !== "debug");
}

/**
 * Asserts that `lines` hold exactly one per-call line for each of `expected` ("Service/Method STATUS",
 * in call order; an INTERNAL must be listed to be accepted), that none of them is "call failed",
 * and that no line carries any of `secrets`.
 */
export function assertCallLines(lines: string[], expected: string[], secrets: string[] = []): void {
  const calls = callLines(lines);
  assert.deepEqual(
    calls.filter((c) => c.msg !== "call"),
    [],
    "no handler failed unexpectedly",
  );
  assert.deepEqual(
    calls.map((c) => `${c.rpc} ${c.status}`),
    expected.map((e) => `stepgate.v1.${e}`),
    "one log line per call, with its status",
  );
  for (const c of calls) assert.equal(typeof c.ms, "number", `${c.rpc}: ms`);
  for (const [i, secret] of secrets.entries()) {
    assert.ok(secret.length > 0, `secret #${i} is empty: the check would find it everywhere`);
    assert.equal(
      lines.some((line) => line.includes(secret)),
      false,
      `secret #${i} is in a log line`,
    );
  }
}
