// Loading the settings declared in settings.ts from the environment. Nothing is declared here: a
// new setting is added to settings.ts alone, and `pnpm docs:config` documents it.
import type { z } from "zod";
import { ConfigError, describeIssues } from "./config-error.ts";
import { objectOf, settingOf, settingsOf } from "./setting.ts";
import { configSchema, resealSchema } from "./settings.ts";

/** The service's deployment settings, from the environment (every field: settings.ts). */
export type Config = z.output<typeof configSchema>;

/**
 * Mutual TLS (STEPGATE_TLS_*): the caller is named by its client certificate, mapped through the
 * policy's `callers.<name>.peers`. Insecure development mode (STEPGATE_INSECURE_DEV=1): plaintext,
 * and the caller is whatever the `stepgate-caller` header says; for `pnpm dev` and tests only.
 */
export type TransportSettings = Config["transport"];

/** What the re-seal job (`pnpm reseal`, keys/reseal.ts) reads: the stores, the key ring and its pace. */
export type ResealConfig = z.output<typeof resealSchema>;

/** The nested input of `schema` from `env`: each setting's variable, empty values left out. */
function inputOf(schema: z.ZodType, env: NodeJS.ProcessEnv): unknown {
  const meta = settingOf(schema);
  if (meta) {
    const value = env[meta.env];
    return value === "" ? undefined : value;
  }
  const object = objectOf(schema);
  if (!object) return undefined;
  return Object.fromEntries(
    Object.entries(object.shape).map(([key, child]) => [key, inputOf(child as z.ZodType, env)]),
  );
}

/** The variable a zod issue's path points at (its setting), or the path itself. */
function variableAt(schema: z.ZodType, path: PropertyKey[]): string {
  const key = path.map(String).join(".");
  const found = settingsOf(schema).find(
    (s) => key === s.path.join(".") || key.startsWith(`${s.path.join(".")}.`),
  );
  return found?.meta.env ?? key;
}

/** Parses `schema` from `env`; a ConfigError names every bad variable (and never its value). */
function parseSettings<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const parsed = schema.safeParse(inputOf(schema, env));
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((issue) => ({ ...issue, path: [variableAt(schema, issue.path)] }));
  throw new ConfigError(describeIssues("environment", issues));
}

/** Reads and validates the environment; throws a ConfigError naming every bad key. */
export function loadConfig(env: NodeJS.ProcessEnv): Config {
  return parseSettings(configSchema, env);
}

/** Reads the re-seal job's settings (the replicas' own keys, no policy file needed); throws a ConfigError naming every bad key. */
export function loadResealConfig(env: NodeJS.ProcessEnv): ResealConfig {
  return parseSettings(resealSchema, env);
}
