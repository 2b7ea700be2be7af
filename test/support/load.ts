import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectError } from "@connectrpc/connect";
import type { StepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/server/factors/totp";
import { replicaTrailer } from "@stepgate/server/rpc/guard";
import { failureKey } from "@stepgate/testkit/failure-key";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";

export interface User {
  subject: string;
  secret: string;
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Enrols and confirms a TOTP factor for `n` new users, `concurrency` at a time (testkit's `seedSubjects`). */
export async function seedUsers(client: StepgateClient, n: number, concurrency = 16): Promise<User[]> {
  return seedSubjects(client, n, { concurrency });
}

/**
 * Tallies which replica answered each successful call, from the `stepgate-replica` trailer, and
 * how many failed attempts grpc-js retried before those answers (`grpc-previous-rpc-attempts`,
 * which grpc-js adds to the response headers of a call it retried).
 */
export class ReplicaTally {
  readonly counts = new Map<string, number>();
  /** Calls that succeeded only after one or more retries. */
  retriedCalls = 0;
  /** Failed attempts before those successes, summed. */
  retriedAttempts = 0;
  readonly onHeader = (headers: Headers) => {
    const previous = Number(headers.get("grpc-previous-rpc-attempts") ?? 0);
    if (previous > 0) {
      this.retriedCalls += 1;
      this.retriedAttempts += previous;
    }
  };
  readonly onTrailer = (trailers: Headers) => {
    const id = trailers.get(replicaTrailer) ?? "unknown";
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  };
}

/**
 * One complete step-up: StepUp answers with a challenge, Verify answers it with the user's next
 * TOTP code (one step of skew, so it is newer than the confirming one). Each user runs it once.
 */
export async function stepUpFlow(client: StepgateClient, user: User, tally?: ReplicaTally): Promise<void> {
  const sessionId = `s-${randomBytes(6).toString("hex")}`;
  const action = "payments.transfer";
  const opts = tally ? { onHeader: tally.onHeader, onTrailer: tally.onTrailer } : {};
  const res = await client.stepUp.stepUp({ subject: user.subject, sessionId, action }, opts);
  if (res.outcome.case !== "challenge") throw new Error(`expected a challenge, got ${res.outcome.case}`);
  const verified = await client.stepUp.verify(
    {
      challengeId: res.outcome.value.challengeId,
      subject: user.subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: totpCode(user.secret, nowSeconds() + 30) } },
      idempotencyKey: randomBytes(12).toString("hex"),
    },
    opts,
  );
  if (!verified.grant?.token) throw new Error("verify returned no grant");
}

export interface LoadResult {
  flows: number;
  failures: number;
  /** Failures by gRPC code name and reason (testkit's `failureKey`), e.g. `UNAVAILABLE/STORE_UNAVAILABLE`. */
  errors: Record<string, number>;
  /**
   * Failures by how many attempts the failed call made: 1 + the `grpc-previous-rpc-attempts` grpc-js
   * adds to the status of a call it retried (`"4"`: a call that used up the client's default retries).
   */
  failedAfterAttempts: Record<string, number>;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/**
 * Open-loop load: one flow per user, started at a fixed rate whatever the latency, so a stall shows
 * as queueing instead of being hidden. `during` runs alongside (the fault being tested).
 */
export async function driveLoad(
  client: StepgateClient,
  users: User[],
  ratePerSecond: number,
  during: () => Promise<void> = async () => {},
  tally?: ReplicaTally,
): Promise<LoadResult> {
  const latencies: number[] = [];
  const errors: Record<string, number> = {};
  const failedAfterAttempts: Record<string, number> = {};
  const intervalMs = 1000 / ratePerSecond;
  const started = performance.now();
  const flows: Promise<void>[] = [];
  const launching = (async () => {
    for (const [i, user] of users.entries()) {
      const due = started + i * intervalMs;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const t0 = performance.now();
      flows.push(
        stepUpFlow(client, user, tally).then(
          () => void latencies.push(performance.now() - t0),
          (error: unknown) => {
            const key = failureKey(error);
            errors[key] = (errors[key] ?? 0) + 1;
            const e = ConnectError.from(error);
            const attempts = String(1 + Number(e.metadata.get("grpc-previous-rpc-attempts") ?? 0));
            failedAfterAttempts[attempts] = (failedAfterAttempts[attempts] ?? 0) + 1;
          },
        ),
      );
    }
  })();
  await Promise.all([launching, during()]);
  await Promise.all(flows);
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  return {
    flows: users.length,
    failures: Object.values(errors).reduce((a, b) => a + b, 0),
    errors,
    failedAfterAttempts,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    maxMs: Math.round(latencies.at(-1) ?? 0),
  };
}

/** Prints a load result as one line, for the test log and the notes. */
export function report(name: string, r: LoadResult): void {
  process.stdout.write(
    `# ${name}: flows=${r.flows} failures=${r.failures} p50=${r.p50Ms}ms p99=${r.p99Ms}ms max=${r.maxMs}ms` +
      `${r.failures ? ` errors=${JSON.stringify(r.errors)} attempts=${JSON.stringify(r.failedAfterAttempts)}` : ""}\n`,
  );
}
