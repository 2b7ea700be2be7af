import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { mutualTlsServerCredentials, type WatchedTlsFiles, watchTlsFiles } from "@stepgate/grpc-bridge";
import type { Config, TransportSettings } from "../config/config.ts";
import { ConfigError } from "../config/config-error.ts";
import type { Clock } from "../domain/clock.ts";
import { type Logger, lifecycle } from "../log/logger.ts";
import { type Composed, compose } from "./compose.ts";
import { createServer } from "./create-server.ts";
import { limitConnections, resetAnsweredStreams } from "./http2-limits.ts";
import { policePings } from "./ping-policy.ts";
import { watchTlsRefusals } from "./tls-refusals.ts";
import { watchDependencies } from "./watch-dependencies.ts";

export interface RunningServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  /**
   * Stops serving: health NOT_SERVING, a short delay so balancers notice, then no new calls
   * while those in flight finish (bounded by `graceMs`), then the stores close.
   */
  shutdown(graceMs?: number): Promise<void>;
  /** Moves the audit events waiting in the outbox to PostgreSQL now (tests read them). */
  flushAudit(): Promise<void>;
  /**
   * Reloads the policy's actions and rules (SIGHUP); resolves with the actions that changed, or
   * rejects with the ConfigError that kept the old policy in force.
   */
  reloadPolicy(): string[];
}

/** Starts a replica: wires the stores, binds the port, and reports SERVING once the stores answer. */
export async function runServer(config: Config, logger: Logger, clock?: Clock): Promise<RunningServer> {
  // TLS files first: a missing certificate is a configuration error, found before anything starts.
  const transport = serverTransport(config.transport, logger);
  let service: Composed;
  try {
    service = await compose(config, logger, clock);
  } catch (error) {
    transport.close();
    throw error;
  }
  const { server, health, throttle } = createServer(config, service, logger);
  if (config.transport.kind === "insecure-dev") {
    lifecycle(logger).warn(
      "STEPGATE_INSECURE_DEV=1: serving plaintext and trusting the stepgate-caller header; never in production",
    );
  }
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${config.host}:${config.port}`, transport.credentials, (error, bound) =>
      error ? reject(error) : resolve(bound),
    );
  });
  const watcher = watchDependencies({
    health,
    dependencies: service.stores.dependencies,
    probe: (name) => service.stores.probe(name),
    intervalMs: config.healthIntervalMs,
    // One line per transition, whatever the level: operators need to see a dependency come and go.
    onDependencyChange: (dependency, up) =>
      lifecycle(logger).warn(
        { dependency, up, health: health.statuses },
        up ? "dependency up" : "dependency down",
      ),
  });
  policePings(server, config.connections.minPingIntervalMs, config.connections.maxPingStrikes);
  throttle.watch(server);
  limitConnections(server, config.connections.maxConnections);
  resetAnsweredStreams(server);
  if (config.transport.kind === "mtls") {
    const { metrics } = service.stepUpService;
    watchTlsRefusals(server, { metrics, logger, logIntervalMs: config.transport.refusalLogIntervalMs });
  }
  await watcher.probe();
  // Lifecycle lines are written whatever the level: supervisors and tests wait for them.
  lifecycle(logger).info(
    { port, transport: config.transport.kind, hotStore: service.stores.hotKind, health: health.status },
    "stepgate serving",
  );
  return {
    port,
    flushAudit: () => service.flushAudit(),
    reloadPolicy: () => service.reloadPolicy(),
    async shutdown(graceMs = config.shutdownGraceMs) {
      watcher.stop();
      health.set("NOT_SERVING");
      if (config.drainDelayMs > 0) await sleep(Math.min(config.drainDelayMs, graceMs));
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn("drain timed out; cancelling remaining calls");
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      transport.close();
      await service.close();
    },
  };
}

interface ServerTransport {
  credentials: grpc.ServerCredentials;
  close(): void;
}

/**
 * Mutual TLS over watched files, or plaintext in insecure development mode. Fails with a ConfigError naming a TLS file that cannot be read or used.
 */
function serverTransport(settings: TransportSettings, logger: Logger): ServerTransport {
  if (settings.kind === "insecure-dev") {
    return { credentials: grpc.ServerCredentials.createInsecure(), close: () => {} };
  }
  let files: WatchedTlsFiles;
  try {
    files = watchTlsFiles({
      certFile: settings.certFile,
      keyFile: settings.keyFile,
      caFile: settings.clientCaFile,
      reloadMs: settings.reloadMs,
      // Whatever the level: operators rotating certificates need to see them taken or refused.
      onReload: (outcome) =>
        outcome.ok
          ? lifecycle(logger).info("TLS certificates reloaded")
          : lifecycle(logger).warn(
              { reason: outcome.reason },
              "TLS certificates not reloaded; keeping the last good ones",
            ),
    });
  } catch (error) {
    throw new ConfigError(`STEPGATE_TLS_*: ${(error as Error).message}`);
  }
  return { credentials: mutualTlsServerCredentials(files), close: () => files.close() };
}
