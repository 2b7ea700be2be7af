import { createHash } from "node:crypto";
import { type DegradedLab, labLockoutMaxFailures, labRedisPrefix } from "./degraded-lab.ts";

/**
 * The hot-store key of a subject's run of consecutive failures: the server's
 * `hotKeys.failures(subject)` (services/stepgate/src/store/hot-keys.ts) written out here, since
 * packages do not import the server; test/degraded checks the two agree.
 */
export function failuresKey(subject: string): string {
  return `failures:${createHash("sha256").update(subject).digest("base64url").slice(0, 32)}`;
}

/** Each subject's run of consecutive failures, and the store it was read from. */
export interface FailureCounts {
  /** By subject; a subject with no run is absent. */
  counts: Map<string, number>;
  /** `redis`, or `postgresql` (hot_entries) when Redis did not answer, or undefined when neither did. */
  from: "redis" | "postgresql" | undefined;
}

/**
 * Reads each subject's run of consecutive failures where the hot state lives once a fault is over:
 * Redis (a lockout mirrored in PostgreSQL is carried back into it before it is used again), or, if
 * Redis does not answer, PostgreSQL's hot_entries. Never rejects.
 */
export async function readFailureCounts(
  lab: DegradedLab,
  subjects: readonly string[],
): Promise<FailureCounts> {
  const counts = new Map<string, number>();
  const keep = (subject: string, n: number) => {
    if (n > 0) counts.set(subject, n);
  };
  try {
    for (let i = 0; i < subjects.length; i += 500) {
      const slice = subjects.slice(i, i + 500);
      const values = await lab.redisClient.mget(...slice.map((s) => `${labRedisPrefix}${failuresKey(s)}`));
      for (const [j, v] of values.entries()) keep(slice[j] as string, Number(v ?? 0));
    }
    return { counts, from: "redis" };
  } catch {
    counts.clear();
  }
  const bySubject = new Map(subjects.map((s) => [failuresKey(s), s]));
  const rows = await lab
    .query<{ key: string; counter: string }>(
      "select key, counter from hot_entries where key = any($1) and expires_at > now()",
      [[...bySubject.keys()]],
    )
    .catch(() => undefined);
  if (!rows) return { counts, from: undefined };
  for (const r of rows) keep(bySubject.get(r.key) as string, Number(r.counter));
  return { counts, from: "postgresql" };
}

/** What the stores hold about the subjects' runs of failures after a run. */
export interface FailureRuns {
  /** Subjects with a run of failures (a count above 0). */
  withFailures: number;
  /** Subjects whose run is longer than the load explains (see `failureRuns`): attempts a store's
   * failure did not give back, or counts that came back after they were cleared. */
  unexplained: number;
  /** Subjects whose run passed the policy's `lockout.max_failures`: locked out. */
  locked: number;
  /** Where the counts were read. */
  from: FailureCounts["from"];
}

/** What the load did to one subject's run: replay probes refused since its last successful Verify
 * (all of the run's when there was none), and whether there was one. */
export interface ExpectedRun {
  probes: number;
  succeeded: boolean;
}

/**
 * Compares the runs of failures after a run (`after`) with what the load explains: it sends no wrong
 * code, and a replay probe's refusal (CODE_REPLAYED) is the only failure it asks for. A subject's run
 * should hold the probes refused since its last successful Verify, or, with none in this run, its
 * run before it (`before`) plus this run's probes. Throws nothing.
 */
export function failureRuns(
  before: FailureCounts,
  after: FailureCounts,
  expected: ReadonlyMap<string, ExpectedRun>,
): FailureRuns {
  let unexplained = 0;
  for (const [subject, n] of after.counts) {
    const e = expected.get(subject) ?? { probes: 0, succeeded: false };
    const explained = e.succeeded ? e.probes : (before.counts.get(subject) ?? 0) + e.probes;
    if (n > explained) unexplained++;
  }
  const values = [...after.counts.values()];
  return {
    withFailures: values.length,
    unexplained,
    locked: values.filter((n) => n > labLockoutMaxFailures).length,
    from: after.from,
  };
}
