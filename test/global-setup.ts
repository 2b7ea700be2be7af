// pnpm test's global setup (node --test-global-setup): the run's PostgreSQL and Redis, the given
// ones (STEPGATE_TEST_DATABASE_URL, STEPGATE_TEST_REDIS_URL) or throwaway servers of its own,
// started before the first test file and removed after the last; and one Node compile cache that
// every test file and replica of the run shares, unless NODE_COMPILE_CACHE names one already.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestStores, type TestStores } from "@stepgate/testkit/test-stores";

let stores: TestStores | undefined;
let compileCache: string | undefined;

export async function globalSetup(): Promise<void> {
  if (!process.env.NODE_COMPILE_CACHE) {
    compileCache = mkdtempSync(join(tmpdir(), "stepgate-test-compile-cache-"));
    // Test files are started after this, with this process's environment.
    process.env.NODE_COMPILE_CACHE = compileCache;
  }
  try {
    stores = await startTestStores();
  } catch (error) {
    // One line and a non-zero exit, before any test starts.
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  }
  for (const line of stores.described) process.stderr.write(`# ${line}\n`);
}

export async function globalTeardown(): Promise<void> {
  await stores?.stop();
  if (compileCache) rmSync(compileCache, { recursive: true, force: true });
}
