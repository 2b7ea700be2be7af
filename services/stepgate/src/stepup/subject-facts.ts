import type { TransactionDetails } from "@stepgate/grant";
import type { Fingerprint } from "../crypto/fingerprint.ts";
import type { ConditionFacts } from "../policy/condition.ts";
import type { SubjectFactStore } from "../store/subject-facts.ts";

/** The keyed hashes of one StepUp's facts: its payee, device and network (where sent), and the subject's step-ups. */
export interface FactKeys {
  payee?: string;
  device?: string;
  network?: string;
  stepUp: string;
}

/**
 * Keyed hashes (the fleet's fingerprint key) of what the subject showed: the transaction's payee
 * (normalised), `context.device`, `context.network`, and the subject's last step-up. A stored key
 * reveals none of them, and is only ever compared, never returned.
 */
export function factKeysOf(
  fingerprint: Fingerprint,
  subject: string,
  transaction: TransactionDetails | undefined,
  context: Record<string, string>,
): FactKeys {
  const key = (kind: string, value?: string) =>
    value ? fingerprint("subject fact v1", kind, subject, value) : undefined;
  const keys: FactKeys = { stepUp: fingerprint("subject fact v1", "step_up", subject) };
  const payee = key("payee", transaction?.payee);
  const device = key("device", context.device);
  const network = key("network", context.network);
  if (payee) keys.payee = payee;
  if (device) keys.device = device;
  if (network) keys.network = network;
  return keys;
}

/** Every key of `keys`: what a successful Verify records. */
export const allFactKeys = (keys: FactKeys): string[] =>
  [keys.payee, keys.device, keys.network, keys.stepUp].filter((k): k is string => k !== undefined);

/**
 * The facts a condition reads, from `store`, counting sightings within `retentionS` seconds of
 * `nowMs`. Undefined when the store cannot answer (PostgreSQL down or slow): the rules that read
 * facts then fail towards the stricter requirement (policy/requirement.ts).
 */
export async function readFacts(
  store: Pick<SubjectFactStore, "seen">,
  keys: FactKeys,
  nowMs: number,
  retentionS: number,
): Promise<ConditionFacts | undefined> {
  let seen: Map<string, number>;
  try {
    seen = await store.seen(allFactKeys(keys), nowMs - retentionS * 1000);
  } catch {
    return undefined;
  }
  const has = (k?: string) => k !== undefined && seen.has(k);
  const stepUpAt = seen.get(keys.stepUp);
  return {
    payeeSeen: has(keys.payee),
    deviceSeen: has(keys.device),
    networkSeen: has(keys.network),
    secondsSinceStepUp: stepUpAt === undefined ? -1 : Math.max(0, Math.floor((nowMs - stepUpAt) / 1000)),
  };
}

/**
 * Deletes facts older than the retention, up to 10,000 rows every `everyMs` (default an hour),
 * on one replica or many (each deletes what it finds). Returns the function that stops it.
 */
export function startFactPruning(options: {
  store: Pick<SubjectFactStore, "prune">;
  clock: () => number;
  /** The retention in force, in seconds (a policy reload may change it). */
  retentionS: () => number;
  everyMs?: number;
  onError: (error: unknown) => void;
}): () => void {
  const timer = setInterval(() => {
    options.store.prune(options.clock() - options.retentionS() * 1000, 10_000).catch(options.onError);
  }, options.everyMs ?? 3_600_000);
  timer.unref();
  return () => clearInterval(timer);
}
