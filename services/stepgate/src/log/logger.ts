import { pino } from "pino";
import { traceIds } from "../observability/tracing.ts";

export type Logger = pino.Logger;

/** JSON lines on stdout. Fields that could carry secrets are redacted as a second line of defence. */
export function createLogger(
  level: string,
  base: Record<string, unknown> = {},
  destination: pino.DestinationStream = pino.destination(1),
): Logger {
  return pino(
    {
      level,
      base: { service: "stepgate", ...base },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: ["*.secret", "*.token", "*.grant", "*.proof", "*.totpCode", "*.recoveryCode", "*.password"],
        censor: "[redacted]",
      },
      formatters: { level: (label) => ({ level: label }) },
      // Every line written inside a traced call carries its trace and span ids.
      mixin: traceIds,
    },
    destination,
  );
}

/** A logger for start and stop lines, which are written even when the level is above info. */
export function lifecycle(logger: Logger): Logger {
  return logger.level === "silent" || logger.isLevelEnabled("info")
    ? logger
    : logger.child({}, { level: "info" });
}
