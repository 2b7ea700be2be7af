import type { AdminConnection, ConnectionOptions } from "./connection.ts";

/** The command-line values of one run, after parsing (`main.ts`). */
export type OptionValues = Record<string, string | boolean | undefined>;

/** What a command runs with. */
export interface CommandContext {
  /** The arguments after the command's words, e.g. the subject. */
  args: string[];
  values: OptionValues;
  /** --json: one JSON document on stdout (JSON lines with --follow). */
  json: boolean;
  /** The grpc-js target, e.g. "ipv4:127.0.0.1:50051,127.0.0.1:50052". */
  target: string;
  connection: ConnectionOptions;
  /** A client over `target` (opened on first use, closed when the run ends). */
  connect(): AdminConnection;
  /** Aborts on SIGINT (for --follow). */
  signal: AbortSignal;
}

/** One command: its words, its own options, and what it does; resolves the exit code. */
export interface Command {
  words: string[];
  /** e.g. "<subject> <factor-id>", for the usage text. */
  synopsis: string;
  summary: string;
  /** The options it takes besides the global ones. */
  options: string[];
  run(ctx: CommandContext): Promise<number>;
}
