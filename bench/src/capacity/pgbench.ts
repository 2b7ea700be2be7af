import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** One pgbench run: its command line and transactions per second. */
export interface PgRate {
  test: string;
  command: string;
  tps: number;
}

export interface PgbenchOptions {
  host: string;
  port: number;
  user: string;
  /** pgbench -s: 100,000 accounts per unit. */
  scale: number;
  /** Connections (-c) and pgbench threads (-j). */
  clients: number;
  threads: number;
  /** Length of each run, seconds. */
  seconds: number;
}

// Like Stepgate's TOTP step claim: one UPDATE of one row by its key, one commit.
const claimScript = `\\set id random(1, 100000 * :scale)
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = :id;
`;

/**
 * What one PostgreSQL primary commits on this machine, in transactions per second: pgbench's
 * built-in simple-update (-N: UPDATE, SELECT and INSERT in one transaction) and a script of one
 * single-row UPDATE per transaction, on a database of its own (`stepgate_capacity_<random>`),
 * dropped `with (force)` at the end.
 */
export function measurePostgres(options: PgbenchOptions): PgRate[] {
  const name = `stepgate_capacity_${randomBytes(6).toString("hex")}`;
  const connection = ["-h", options.host, "-p", String(options.port), "-U", options.user];
  const dir = mkdtempSync(join(tmpdir(), "stepgate-capacity-"));
  const script = join(dir, "claim.sql");
  writeFileSync(script, claimScript);
  execFileSync("createdb", [...connection, name]);
  try {
    execFileSync("pgbench", [...connection, "-i", "-q", "-s", String(options.scale), name], {
      stdio: "pipe",
    });
    const load = [
      "-c",
      String(options.clients),
      "-j",
      String(options.threads),
      "-T",
      String(options.seconds),
    ];
    const run = (test: string, args: string[]): PgRate => {
      const all = [...connection, ...load, ...args, name];
      const out = execFileSync("pgbench", all, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      const tps = Number(/^tps = ([\d.]+)/m.exec(out)?.[1] ?? Number.NaN);
      return { test, command: `pgbench ${all.join(" ").replace(name, "<db>")}`, tps };
    };
    return [
      run("simple-update (-N)", ["-N"]),
      run("one UPDATE by key", ["-n", "-f", script, "-D", `scale=${options.scale}`]),
    ];
  } finally {
    execFileSync(
      "psql",
      [...connection, "-d", "postgres", "-c", `drop database if exists ${name} with (force)`],
      {
        stdio: "ignore",
      },
    );
    rmSync(dir, { recursive: true, force: true });
  }
}
