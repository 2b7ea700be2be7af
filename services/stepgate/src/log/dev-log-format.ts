import { ConfigError } from "../config/config-error.ts";

/** How `pnpm dev` writes log lines: JSON as the replicas write it, or pino-pretty's readable lines. */
export type LogFormat = "json" | "pretty";

const formats: readonly LogFormat[] = ["json", "pretty"];

/**
 * The format for `pnpm dev`'s stdout: `setting` (`STEPGATE_LOG_FORMAT`, json or pretty) when set,
 * else pretty on a terminal and JSON anywhere else (a pipe, a file, a log collector). Throws a
 * ConfigError for any other setting.
 */
export function logFormatFor(setting: string | undefined, isTTY: boolean): LogFormat {
  if (setting === undefined || setting === "") return isTTY ? "pretty" : "json";
  const format = formats.find((f) => f === setting);
  if (!format) throw new ConfigError("STEPGATE_LOG_FORMAT must be json or pretty");
  return format;
}

/** Turns one log line (with or without its newline) into what is written, newline included. */
export type FormatLine = (line: string) => string;

export interface LineFormatOptions {
  /** ANSI colours in pretty lines: for a terminal only. */
  colorize: boolean;
}

/**
 * The line formatter for `format`. JSON lines pass through unchanged; pretty turns each JSON line
 * into one line of time, level, replica and message, then the other fields (pino-pretty, loaded
 * only here), and passes any line that is not JSON (the banner) through as it is.
 */
export async function createLineFormat(format: LogFormat, options: LineFormatOptions): Promise<FormatLine> {
  const bare = (line: string) => (line.endsWith("\n") ? line.slice(0, -1) : line);
  if (format === "json") return (line) => `${bare(line)}\n`;
  const { prettyFactory } = await import("pino-pretty");
  const pretty = prettyFactory({
    colorize: options.colorize,
    translateTime: "SYS:HH:MM:ss.l",
    singleLine: true,
    messageFormat: "{if replica}{replica} {end}{msg}",
    // Constant in every line of `pnpm dev`, or shown in the message already.
    ignore: "pid,hostname,service,mode,replica",
  });
  return (line) => {
    const text = bare(line);
    return text.startsWith("{") ? pretty(text) : `${text}\n`;
  };
}
