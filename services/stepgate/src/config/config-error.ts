/** A configuration problem found at start; the message names the bad key and never its value. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Formats zod issues as `prefix: path: message` lines, naming each bad key. */
export function describeIssues(prefix: string, issues: { path: PropertyKey[]; message: string }[]): string {
  return issues
    .map((issue) => `${prefix}: ${issue.path.map(String).join(".") || "(root)"}: ${issue.message}`)
    .join("\n");
}
