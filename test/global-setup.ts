// pnpm test's global setup (node --test-global-setup): the run's PostgreSQL and Redis, the given
// ones (STEPGATE_TEST_DATABASE_URL, STEPGATE_TEST_REDIS_URL) or throwaway servers of its own,
// started before the first test file and removed after the last.
import { startTestStores, type TestStores } from "@stepgate/testkit/test-stores";

let stores: TestStores | undefined;

export async function globalSetup(): Promise<void> {
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
}
