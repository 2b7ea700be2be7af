#!/usr/bin/env node
// `stepgate`: the operator's command line over AdminService (docs/operator-cli.md).
import { parseArgs } from "node:util";
import type { Command, CommandContext, OptionValues } from "./command.ts";
import { auditTailCommand } from "./commands/audit-tail.ts";
import { keysRotateCommand } from "./commands/keys-rotate.ts";
import { resealCommand } from "./commands/reseal.ts";
import { statusCommand } from "./commands/status.ts";
import {
  factorsListCommand,
  factorsRemoveCommand,
  sessionsEndCommand,
  subjectUnlockCommand,
} from "./commands/subject-commands.ts";
import { type AdminConnection, type ConnectionOptions, connect } from "./connection.ts";
import { describeFailure, exitCodeOf, exitCodes, UsageError } from "./exit-codes.ts";
import { durationMs } from "./inputs.ts";

const commands: Command[] = [
  statusCommand,
  factorsListCommand,
  factorsRemoveCommand,
  sessionsEndCommand,
  subjectUnlockCommand,
  auditTailCommand,
  keysRotateCommand,
  resealCommand,
];

/** `pnpm dev`'s replicas. */
const defaultTarget = "ipv4:127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053";
const globalOptions = ["target", "json", "cert", "key", "ca", "operator", "timeout", "help"];

const options = {
  target: { type: "string" },
  json: { type: "boolean" },
  cert: { type: "string" },
  key: { type: "string" },
  ca: { type: "string" },
  operator: { type: "string" },
  timeout: { type: "string" },
  help: { type: "boolean", short: "h" },
  subject: { type: "string" },
  kind: { type: "string" },
  caller: { type: "string" },
  since: { type: "string" },
  limit: { type: "string" },
  follow: { type: "boolean" },
  now: { type: "boolean" },
  "retire-previous": { type: "boolean" },
  all: { type: "boolean" },
} as const;

function usage(): string {
  const lines = commands.map(
    (c) => `  stepgate ${[...c.words, c.synopsis].join(" ").trim()}\n      ${c.summary}`,
  );
  return [
    "usage: stepgate <command> [options]",
    ...lines,
    "options: --target T (default STEPGATE_TARGET or pnpm dev's), --json, --timeout 10s,",
    "  --cert F --key F --ca F (or STEPGATE_OPERATOR_CERT_FILE, _KEY_FILE, _CA_FILE): mutual TLS,",
    "  --operator NAME (or STEPGATE_OPERATOR; default dev): insecure development mode only",
    "exit codes: 0 ok, 1 refused or failed, 2 bad usage or input, 3 unreachable, 4 not allowed, 5 not found",
  ].join("\n");
}

function commandOf(positionals: string[]): Command {
  const command = commands.find((c) => c.words.every((w, i) => positionals[i] === w));
  if (!command) {
    const given = positionals.slice(0, 2).join(" ");
    throw new UsageError(given === "" ? "a command is required" : `unknown command "${given}"`);
  }
  const args = positionals.slice(command.words.length);
  const most = command.synopsis.split(" ").filter((w) => w !== "").length;
  if (args.length > most)
    throw new UsageError(`unexpected argument "${args[most]}" for ${command.words.join(" ")}`);
  return command;
}

function connectionOptions(values: OptionValues, env: NodeJS.ProcessEnv, reseal: boolean): ConnectionOptions {
  const pick = (option: string, variable: string) => {
    const v = values[option];
    return typeof v === "string" ? v : env[variable];
  };
  const files = {
    certFile: pick("cert", "STEPGATE_OPERATOR_CERT_FILE"),
    keyFile: pick("key", "STEPGATE_OPERATOR_KEY_FILE"),
    caFile: pick("ca", "STEPGATE_OPERATOR_CA_FILE"),
  };
  const { certFile, keyFile, caFile } = files;
  const given = [certFile, keyFile, caFile].filter((f) => f !== undefined && f !== "").length;
  if (given !== 0 && given !== 3) throw new UsageError("--cert, --key and --ca go together (mutual TLS)");
  const timeout = typeof values.timeout === "string" ? values.timeout : undefined;
  // A re-seal moves every sealed value: it may take minutes.
  const timeoutMs = timeout === undefined ? (reseal ? 600_000 : 10_000) : durationMs("--timeout", timeout);
  if (certFile && keyFile && caFile) return { tls: { certFile, keyFile, caFile }, timeoutMs };
  return { operator: pick("operator", "STEPGATE_OPERATOR") ?? "dev", timeoutMs };
}

/** Runs one command line; resolves the exit code. Writes only to stdout and stderr. */
export async function run(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let connection: AdminConnection | undefined;
  const stop = new AbortController();
  // Ctrl-C ends a --follow cleanly (exit 0); elsewhere it keeps its default meaning.
  const onInterrupt = () => stop.abort();
  if (argv.includes("--follow")) process.once("SIGINT", onInterrupt);
  let name = "stepgate";
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    if (values.help) {
      process.stdout.write(`${usage()}\n`);
      return exitCodes.ok;
    }
    const command = commandOf(positionals);
    name = `stepgate ${command.words.join(" ")}`;
    for (const option of Object.keys(values)) {
      if (!globalOptions.includes(option) && !command.options.includes(option))
        throw new UsageError(`--${option} is not an option of ${command.words.join(" ")}`);
    }
    const ctx: CommandContext = {
      args: positionals.slice(command.words.length),
      values,
      json: values.json === true,
      target: values.target ?? env.STEPGATE_TARGET ?? defaultTarget,
      connection: connectionOptions(values, env, command === resealCommand),
      connect() {
        connection ??= connect(ctx.target, ctx.connection);
        return connection;
      },
      signal: stop.signal,
    };
    return await command.run(ctx);
  } catch (error) {
    // node:util parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes: bad usage, said as it is.
    const code = (error as { code?: unknown }).code;
    const badArgs = typeof code === "string" && code.startsWith("ERR_PARSE_ARGS");
    process.stderr.write(`${name}: ${badArgs ? (error as Error).message : describeFailure(error)}\n`);
    return badArgs ? exitCodes.usage : exitCodeOf(error);
  } finally {
    process.off("SIGINT", onInterrupt);
    connection?.close();
  }
}

if (import.meta.main) {
  quietTlsServerNameWarning();
  process.exitCode = await run(process.argv.slice(2));
}

/**
 * grpc-js names an IP target as the TLS server name, which Node warns about (DEP0123) on every
 * connection; the server's certificate is still checked against the IP. Other warnings print.
 */
function quietTlsServerNameWarning(): void {
  process.removeAllListeners("warning");
  process.on("warning", (warning: Error & { code?: string }) => {
    if (warning.code !== "DEP0123") process.stderr.write(`${warning.name}: ${warning.message}\n`);
  });
}
