import { existsSync, readdirSync, realpathSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";

/** A program on the PATH, or undefined. */
export function onPath(program: string, path = process.env.PATH ?? ""): string | undefined {
  return path
    .split(delimiter)
    .map((dir) => join(dir, program))
    .find((file) => existsSync(file));
}

/**
 * The folder with PostgreSQL's `initdb` and `postgres`: STEPGATE_PG_BIN, else `initdb`'s folder on
 * the PATH, else the newest `/usr/lib/postgresql/<major>/bin` (Debian and Ubuntu keep the server
 * binaries off the PATH). Undefined when there is none.
 */
export function postgresBinDir(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.STEPGATE_PG_BIN) return env.STEPGATE_PG_BIN;
  const initdb = onPath("initdb", env.PATH);
  // A symlink's target: pg_basebackup and the rest sit beside the real initdb, not the link.
  if (initdb) return dirname(realpathSync(initdb));
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root) ? readdirSync(root).filter((d) => /^\d+$/.test(d)) : [];
  const newest = majors
    .sort((a, b) => Number(b) - Number(a))
    .find((m) => existsSync(join(root, m, "bin", "initdb")));
  return newest === undefined ? undefined : join(root, newest, "bin");
}
