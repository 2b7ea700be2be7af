import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { ConfigError } from "../config/config-error.ts";
import { elevationLifetimeMs, longestGrantLifetimeMs } from "./assurance.ts";
import { type Policy, parsePolicy } from "./policy.ts";

/** The policy in force and the text it was read from, for reloads. */
export interface LoadedPolicy {
  policy: Policy;
  path: string;
  text: string;
}

/** Reads, validates and compiles the policy file; throws a ConfigError (the replica exits 2). */
export function loadPolicyFile(path: string): LoadedPolicy {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new ConfigError(`STEPGATE_POLICY_FILE: cannot read ${path}`);
  }
  return { policy: parsePolicy(text, path), path, text };
}

// The parts a reload may change: the actions (their requirements and rules) and the facts' retention.
const reloadable = new Set(["actions", "facts"]);

/**
 * Reloads the actions and their rules from the file, in place, so every use case sees them at
 * once: the new policy is read, validated and compiled first, and nothing changes unless all of
 * it is good. Refused, with the old policy kept in force, when the file does not validate or a
 * condition does not compile, when it changes anything but `actions` and `facts` (a restart
 * applies those), or when it lengthens the longest grant or elevation lifetime (the keys' and
 * revocations' retention was sized at start). Returns the actions that changed; throws ConfigError.
 */
export function reloadActions(loaded: LoadedPolicy): string[] {
  const next = loadPolicyFile(loaded.path);
  const fixed = (text: string) =>
    JSON.stringify(
      Object.entries((parse(text) ?? {}) as Record<string, unknown>).filter(([k]) => !reloadable.has(k)),
    );
  if (fixed(next.text) !== fixed(loaded.text))
    throw new ConfigError(`${loaded.path}: only actions and facts reload; restart the replica for the rest`);
  const { policy } = loaded;
  if (
    longestGrantLifetimeMs(next.policy) > longestGrantLifetimeMs(policy) ||
    elevationLifetimeMs(next.policy) > elevationLifetimeMs(policy)
  )
    throw new ConfigError(`${loaded.path}: a longer grant_ttl or max_age needs a restart`);
  const changed = [...new Set([...policy.actions.keys(), ...next.policy.actions.keys()])].filter(
    (name) => JSON.stringify(describe(policy, name)) !== JSON.stringify(describe(next.policy, name)),
  );
  policy.actions.clear();
  for (const [name, action] of next.policy.actions) policy.actions.set(name, action);
  policy.readsFacts = next.policy.readsFacts;
  policy.factRetentionSeconds = next.policy.factRetentionSeconds;
  loaded.text = next.text;
  return changed;
}

// An action as data, to tell which ones a reload changed (rules by name and condition).
function describe(policy: Policy, name: string): unknown {
  const a = policy.actions.get(name);
  return a && { ...a, rules: a.rules.map((r) => [r.name, r.when.source, { ...r.requirement, rules: [] }]) };
}
