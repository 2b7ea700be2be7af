import { setTimeout as sleep } from "node:timers/promises";
import type { DegradedLab } from "./degraded-lab.ts";
import type { FlowLoad } from "./flow-load.ts";
import { seedSubjects } from "./seed-subjects.ts";
import { codeForStep, totpStep } from "./totp-code.ts";

/** The degraded-mode scenarios, by name (`--scenario=<name>`). */
export const scenarioNames = [
  "postgres-down",
  "redis-down",
  "redis-restarted-empty",
  "postgres-blackholed",
  "redis-blackholed",
  "both-down",
  "one-replica-loses-postgres",
  "replica-killed-during-postgres-outage",
] as const;

export type ScenarioName = (typeof scenarioNames)[number];

/** When a fault happened, in ms since the load started. */
export interface FaultMarks {
  /** The fault began (the first signal, or the first proxy switched). */
  startMs: number;
  /** The fault was wholly in place (the stores' processes gone, every proxy switched). */
  appliedMs: number;
  /** The repair began (a store's start, a proxy's pass()). */
  repairMs: number;
  /** The repair was done: the store answers again. */
  endMs: number;
}

/** What a scenario's fault saw besides the load: e.g. an offline check during it. */
export interface FaultOutcome {
  marks: FaultMarks;
  /** Lines for the report, e.g. when a replica was killed and served again. */
  notes: string[];
  /** Checks the scenario made itself, by name: true when they held. */
  checks: Record<string, boolean>;
}

/** A scenario: a fault applied to a running lab while a flow load runs. */
export interface Scenario {
  name: ScenarioName;
  /** A short title, e.g. "PostgreSQL down". */
  title: string;
  /** What the fault does, for the report. */
  how: string;
  /** The dependencies it breaks, whose "dependency down" and "dependency up" log lines count. */
  dependencies: ("postgresql" | "redis")[];
  /** Applies the fault at once (marking its start), holds it about `faultMs` ms, repairs it (marking
   * its end) and resolves. Rejects when the lab cannot do what it asks (e.g. a store does not start). */
  run(lab: DegradedLab, load: FlowLoad, faultMs: number): Promise<FaultOutcome>;
}

/** Runs `apply`, holds the fault until `faultMs` after its start (running `during` meanwhile, which
 * may take longer), then `repair`; marks each step in `load`'s time. */
async function hold(
  load: FlowLoad,
  faultMs: number,
  apply: () => Promise<unknown>,
  repair: () => Promise<unknown>,
  during: (startMs: number) => Promise<void> = async () => {},
): Promise<FaultMarks> {
  const startMs = load.markFaultStart();
  await apply();
  const appliedMs = Math.round(load.elapsedMs());
  await during(startMs);
  const left = startMs + faultMs - load.elapsedMs();
  if (left > 0) await sleep(left);
  const repairMs = Math.round(load.elapsedMs());
  await repair();
  const endMs = load.markFaultEnd();
  return { startMs, appliedMs, repairMs, endMs };
}

const simple = (marks: FaultMarks): FaultOutcome => ({ marks, notes: [], checks: {} });

/** Sleeps until `at` ms after the load started (at once if that has passed). */
const until = async (load: FlowLoad, at: number) => {
  const left = at - load.elapsedMs();
  if (left > 0) await sleep(left);
};

const postgresDown: Scenario = {
  name: "postgres-down",
  title: "PostgreSQL down",
  how: "PostgreSQL stopped by PID (SIGQUIT, immediate), started again at the end",
  dependencies: ["postgresql"],
  run: async (lab, load, faultMs) =>
    simple(
      await hold(
        load,
        faultMs,
        () => lab.postgres.stop("SIGQUIT"),
        () => lab.postgres.start(),
      ),
    ),
};

const redisDown: Scenario = {
  name: "redis-down",
  title: "Redis down",
  how: "Redis stopped by PID (SIGKILL), started again (empty) at the end",
  dependencies: ["redis"],
  run: async (lab, load, faultMs) =>
    simple(
      await hold(
        load,
        faultMs,
        () => lab.redis.stop("SIGKILL"),
        () => lab.redis.start(),
      ),
    ),
};

const redisRestartedEmpty: Scenario = {
  name: "redis-restarted-empty",
  title: "Redis restarted empty",
  how: "Redis stopped by PID (SIGKILL) and started again at once, empty; the fault's seconds watch what follows",
  dependencies: ["redis"],
  async run(lab, load, faultMs) {
    const startMs = load.markFaultStart();
    await lab.redis.stop("SIGKILL");
    const appliedMs = Math.round(load.elapsedMs());
    await lab.redis.start();
    const endMs = load.markFaultEnd();
    await until(load, startMs + faultMs);
    return simple({ startMs, appliedMs, repairMs: appliedMs, endMs });
  },
};

const blackholed = (store: "postgresql" | "redis"): Scenario => ({
  name: store === "postgresql" ? "postgres-blackholed" : "redis-blackholed",
  title: `${store === "postgresql" ? "PostgreSQL" : "Redis"} blackholed`,
  how: `every replica's ${store === "postgresql" ? "PostgreSQL" : "Redis"} proxy blackholed (no reset, no answer), then pass()`,
  dependencies: [store],
  run: async (lab, load, faultMs) =>
    simple(
      await hold(
        load,
        faultMs,
        () => Promise.all(lab.proxies(store).map((p) => p.blackhole())),
        () => Promise.all(lab.proxies(store).map((p) => p.pass())),
      ),
    ),
});

const bothDown: Scenario = {
  name: "both-down",
  title: "both down",
  how: "PostgreSQL (SIGQUIT) and Redis (SIGKILL) stopped by PID together, started again at the end",
  dependencies: ["postgresql", "redis"],
  async run(lab, load, faultMs) {
    // A grant issued before the fault, verified offline once so the client holds the JWKS.
    const token = await grantForFreshSubject(lab);
    await lab.client.verifyGrant(token, { action: "payments.transfer" });
    let offline = false;
    let offlineError = "";
    const marks = await hold(
      load,
      faultMs,
      () => Promise.all([lab.postgres.stop("SIGQUIT"), lab.redis.stop("SIGKILL")]),
      () => Promise.all([lab.postgres.start(), lab.redis.start()]),
      async (startMs) => {
        await until(load, startMs + faultMs / 2);
        offline = await lab.client.verifyGrant(token, { action: "payments.transfer" }).then(
          () => true,
          (error: unknown) => {
            offlineError = error instanceof Error ? error.message : String(error);
            return false;
          },
        );
      },
    );
    return {
      marks,
      notes: [
        `offline verifyGrant of a grant issued before the fault, halfway through it: ${offline ? "valid" : `refused (${offlineError})`}`,
      ],
      checks: { "offline verifyGrant during the fault": offline },
    };
  },
};

const oneReplicaLosesPostgres: Scenario = {
  name: "one-replica-loses-postgres",
  title: "one replica alone loses PostgreSQL",
  how: "replica-1's PostgreSQL proxy blackholed (the others keep theirs), then pass()",
  dependencies: ["postgresql"],
  run: async (lab, load, faultMs) => {
    const proxy = lab.replicas[0]?.postgresProxy;
    if (!proxy) throw new Error("the lab has no replica");
    return simple(
      await hold(
        load,
        faultMs,
        () => proxy.blackhole(),
        () => proxy.pass(),
      ),
    );
  },
};

const replicaKilledDuringPostgresOutage: Scenario = {
  name: "replica-killed-during-postgres-outage",
  title: "a replica SIGKILLed during the PostgreSQL outage",
  how: "PostgreSQL stopped (SIGQUIT); a third in, replica-2 SIGKILLed; halfway, replica-2 started again (PostgreSQL still down); PostgreSQL started at the end",
  dependencies: ["postgresql"],
  async run(lab, load, faultMs) {
    const victim = lab.replicas[1]?.process;
    if (!victim) throw new Error("the lab needs two replicas");
    const notes: string[] = [];
    let restarted = false;
    const marks = await hold(
      load,
      faultMs,
      () => lab.postgres.stop("SIGQUIT"),
      () => lab.postgres.start(),
      async (startMs) => {
        await until(load, startMs + faultMs / 3);
        const killedAt = Math.round(load.elapsedMs() - startMs);
        await victim.stop("SIGKILL");
        await until(load, startMs + faultMs / 2);
        const startAt = Math.round(load.elapsedMs() - startMs);
        await victim.start();
        restarted = lab.postgres.running === false;
        notes.push(
          `${victim.id} SIGKILLed at +${killedAt} ms, started at +${startAt} ms, serving at ` +
            `+${Math.round(load.elapsedMs() - startMs)} ms${restarted ? " (PostgreSQL still down)" : ""}`,
        );
      },
    );
    return { marks, notes, checks: { "killed replica served again during the outage": restarted } };
  },
};

/** Every scenario, by name, in `scenarioNames` order. */
export const scenarios: Record<ScenarioName, Scenario> = {
  "postgres-down": postgresDown,
  "redis-down": redisDown,
  "redis-restarted-empty": redisRestartedEmpty,
  "postgres-blackholed": blackholed("postgresql"),
  "redis-blackholed": blackholed("redis"),
  "both-down": bothDown,
  "one-replica-loses-postgres": oneReplicaLosesPostgres,
  "replica-killed-during-postgres-outage": replicaKilledDuringPostgresOutage,
};

/** A grant for a subject enrolled now (not one of the load's): StepUp, then Verify with the next
 * step's code. Rejects with the first failed call. */
async function grantForFreshSubject(lab: DegradedLab): Promise<string> {
  const [s] = await seedSubjects(lab.client, 1, { prefix: "offline-" });
  if (!s) throw new Error("no subject seeded");
  const sessionId = `offline-${s.subject}`;
  const action = "payments.transfer";
  const r = await lab.client.stepUp.stepUp({ subject: s.subject, sessionId, action });
  if (r.outcome.case !== "challenge") throw new Error(`expected a challenge, got ${r.outcome.case}`);
  const step = Math.max(s.lastStep + 1, totpStep(Date.now() / 1000));
  const v = await lab.client.stepUp.verify({
    challengeId: r.outcome.value.challengeId,
    subject: s.subject,
    sessionId,
    action,
    proof: { kind: { case: "totpCode", value: codeForStep(s.secret, step) } },
    idempotencyKey: `offline-${step}`,
  });
  if (!v.grant?.token) throw new Error("Verify returned no grant");
  return v.grant.token;
}
