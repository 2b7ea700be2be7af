import { register } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { DiagLogLevel, diag } from "@opentelemetry/api";

export interface TelemetryOptions {
  /** `service.name` when OTEL_SERVICE_NAME is not set. */
  serviceName: string;
  /** `service.instance.id`: the replica's id, so dashboards can tell replicas apart. */
  instanceId?: string;
  /** The environment to read OTEL_* from (default `process.env`). */
  env?: NodeJS.ProcessEnv;
}

export interface Telemetry {
  /** False when the environment turned telemetry off (OTEL_SDK_DISABLED) or asked for no exporter. */
  readonly enabled: boolean;
  /** Flushes what is buffered and stops exporting; never throws. */
  shutdown(): Promise<void>;
}

const shutdownBudgetMs = 2000;

const off: Telemetry = { enabled: false, shutdown: async () => {} };

/** True when the environment names somewhere to send telemetry or an exporter to use. */
function wanted(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED === "true") return false;
  const named = ["OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"];
  return (
    named.some((key) => (env[key] ?? "") !== "") || (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? "") !== ""
  );
}

/**
 * Starts the OpenTelemetry Node SDK from the standard OTEL_* variables, with the gRPC, pg and
 * ioredis instrumentations. Call it before the application's modules load: it registers the ESM
 * loader hook first, then loads the SDK, so the instrumented libraries are patched when imported.
 * With no exporter configured it does nothing, so an unconfigured service pays no cost.
 */
export async function startTelemetry(options: TelemetryOptions): Promise<Telemetry> {
  const env = options.env ?? process.env;
  if (!wanted(env)) return off;
  register("@opentelemetry/instrumentation/hook.mjs", import.meta.url);
  const { startNodeSdk } = await import("@opentelemetry/sdk-node");
  const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
  const { PgInstrumentation } = await import("@opentelemetry/instrumentation-pg");
  const { IORedisInstrumentation } = await import("@opentelemetry/instrumentation-ioredis");
  // Unset exporters default to none, not to an OTLP collector on localhost that may not exist.
  env.OTEL_TRACES_EXPORTER ??=
    env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? "otlp" : "none";
  env.OTEL_METRICS_EXPORTER ??= env.OTEL_EXPORTER_OTLP_ENDPOINT ? "otlp" : "none";
  env.OTEL_LOGS_EXPORTER ??= "none";
  const sdk = startNodeSdk({
    // The attributes below and OTEL_RESOURCE_ATTRIBUTES are all we need; detectors only add noise.
    resourceDetectors: [],
    resourceAttributes: {
      "service.name": env.OTEL_SERVICE_NAME || options.serviceName,
      ...(options.instanceId ? { "service.instance.id": options.instanceId } : {}),
    },
    instrumentations: [
      new GrpcInstrumentation(),
      // Statement text only: values (codes, hashes, secrets) are never recorded.
      new PgInstrumentation({ enhancedDatabaseReporting: false }),
      // The command name only: keys and arguments stay out of spans.
      new IORedisInstrumentation({ dbStatementSerializer: (command) => command }),
    ],
  });
  // Exporting must never break a request: SDK problems go to this diagnostic logger, not to callers.
  diag.setLogger(
    { error: report, warn: report, info: () => {}, debug: () => {}, verbose: () => {} },
    { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true },
  );
  return {
    enabled: true,
    async shutdown() {
      // A collector that is gone must not hold up a replica's exit: flush for a bounded time.
      await Promise.race([sdk.shutdown().catch(report), sleep(shutdownBudgetMs)]);
    },
  };
}

function report(...args: unknown[]): void {
  const text = args.map((a) => (a instanceof Error ? `${a.name}: ${a.message}` : String(a))).join(" ");
  process.stderr.write(
    `${JSON.stringify({ level: "warn", msg: "telemetry", detail: text.slice(0, 300) })}\n`,
  );
}
