import { loadConfig } from "./config/config.ts";
import { ConfigError } from "./config/config-error.ts";
import { createLogger, lifecycle } from "./log/logger.ts";

/** Runs one replica from the environment; exits non-zero, naming the bad key, on bad configuration. */
export interface MainOptions {
  /** Runs after the server drained and closed its stores, before the process exits. */
  afterShutdown?: () => Promise<void>;
}

export async function runReplica(
  env: NodeJS.ProcessEnv = process.env,
  options: MainOptions = {},
): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig(env);
  } catch (error) {
    process.stderr.write(`stepgate: invalid configuration\n${(error as Error).message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel, { replica: config.replicaId });
  // The server (grpc-js, pg, ioredis, the request rules) loads once the environment is valid, so a
  // bad one exits in a fraction of a second.
  const { runServer } = await import("./server/run.ts");
  let running: Awaited<ReturnType<typeof runServer>>;
  try {
    running = await runServer(config, logger);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`stepgate: invalid configuration\n${error.message}\n`);
      process.exit(2);
    }
    logger.fatal(
      { error: error instanceof Error ? { name: error.name, message: error.message.slice(0, 300) } : error },
      "start failed",
    );
    process.exit(1);
  }
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    lifecycle(logger).info({ signal }, "draining");
    running
      .shutdown()
      .then(() => options.afterShutdown?.())
      .then(
        () => {
          lifecycle(logger).info("stopped");
          process.exit(0);
        },
        (error: unknown) => {
          logger.error({ error: String(error) }, "shutdown failed");
          process.exit(1);
        },
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  // The policy's actions and rules, reloaded in place; a bad file leaves the one in force.
  process.on("SIGHUP", () => {
    try {
      lifecycle(logger).info({ changed: running.reloadPolicy() }, "policy reloaded");
    } catch (error) {
      lifecycle(logger).error(
        { error: (error as Error).message.slice(0, 2000) },
        "policy not reloaded; the old one stays in force",
      );
    }
  });
}
