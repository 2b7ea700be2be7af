import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { createStepgateClient } from "@stepgate/client";
import { newSubject } from "./support/flows.ts";

const repoRoot = join(import.meta.dirname, "..");

interface DevServer {
  child: ChildProcess;
  lines: string[];
}

/**
 * Starts `pnpm dev`'s entry point with no PostgreSQL or Redis configured, its stdout a pipe (not a
 * terminal); resolves once it serves, which it says in its banner.
 */
async function startDev(
  dir: string,
  port: number,
  pgPort: number,
  extraEnv: Record<string, string> = {},
): Promise<DevServer> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME };
  Object.assign(env, {
    STEPGATE_DEV_DIR: dir,
    STEPGATE_PORT: String(port),
    STEPGATE_DEV_PG_PORT: String(pgPort),
    ...extraEnv,
  });
  const child = spawn(process.execPath, [join(repoRoot, "services/stepgate/src/dev.ts")], {
    env,
    stdio: "pipe",
  });
  const lines: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`dev server did not serve in time:\n${lines.join("")}`)),
      90_000,
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      lines.push(...String(chunk).split("\n").filter(Boolean));
      if (lines.some((l) => l.startsWith("Stepgate: 3 replicas"))) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => lines.push(String(chunk)));
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`dev server exited with ${code}:\n${lines.join("\n")}`));
    });
  });
  return { child, lines };
}

async function stop(dev: DevServer): Promise<number | null> {
  if (dev.child.exitCode !== null) return dev.child.exitCode;
  const exited = new Promise<number | null>((resolve) => dev.child.once("exit", resolve));
  dev.child.kill("SIGTERM");
  return exited;
}

describe("pnpm dev on the embedded default", () => {
  const dir = mkdtempSync(join(tmpdir(), "stepgate-dev-"));
  const port = 30_000 + Math.floor(Math.random() * 10_000);
  const pgPort = port + 10_000;
  const running: DevServer[] = [];
  after(async () => {
    for (const d of running) await stop(d);
    rmSync(dir, { recursive: true, force: true });
  });

  it("starts three replicas, says so in its first log line, and keeps enrolments across a restart", async () => {
    const first = await startDev(dir, port, pgPort);
    running.push(first);
    assert.match(first.lines[0] ?? "", /embedded PostgreSQL/);
    // Not a terminal: its own lines and the replicas' are JSON, as they were written.
    const logLines = first.lines.filter((l) => l.includes('"level"'));
    assert.ok(logLines.some((l) => l.includes('"stepgate serving"')));
    for (const l of logLines) assert.equal(typeof JSON.parse(l), "object", l);
    const subject = newSubject();
    const target = `ipv4:127.0.0.1:${port},127.0.0.1:${port + 1},127.0.0.1:${port + 2}`;
    assert.ok(
      first.lines.some((l) => l.includes(target)),
      "prints the client target",
    );
    const client = createStepgateClient({ target, caller: "payments" });
    const enrolled = await client.factors.enrollTotp({
      subject,
      label: "Phone",
      accountName: "dev@example.com",
      grant: "",
    });
    client.close();
    assert.equal(await stop(first), 0, "SIGTERM drains and exits 0");

    // STEPGATE_LOG_FORMAT=pretty: readable lines, and the banner still comes once all serve.
    const second = await startDev(dir, port, pgPort, { STEPGATE_LOG_FORMAT: "pretty" });
    running.push(second);
    const serving = second.lines.filter((l) => /\] INFO: dev-\d stepgate serving/.test(l));
    assert.equal(serving.length, 3, second.lines.join("\n"));
    assert.ok(!second.lines.some((l) => l.startsWith('{"level"')), "no JSON line");
    // Another replica than the one that enrolled: they share the embedded database.
    const again = createStepgateClient({ target: `127.0.0.1:${port + 2}`, caller: "payments" });
    const listed = await again.factors.listFactors({ subject });
    again.close();
    assert.deepEqual(
      listed.factors.map((f) => f.factorId),
      [enrolled.factorId],
    );
    assert.equal(await stop(second), 0);
  });
});
