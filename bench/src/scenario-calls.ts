import { randomBytes } from "node:crypto";
import { type Client, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { callerHeader } from "@stepgate/api";
import { BenchService } from "@stepgate/api/gen/stepgate/bench/v1/bench_service_pb";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import type { NextCall } from "./closed-loop.ts";
import { failedStep } from "./phase-recorder.ts";
import type { BenchUser } from "./seed-users.ts";
import { totpStepSeconds, verifyAtStep } from "./verify-at-step.ts";
import type { CallName } from "./worker-messages.ts";

// payments.transfer in the example policy: aal2, TOTP only, max_age 300 s, so one Verify keeps a
// session elevated for the whole run and its grants are reusable (not single-use).
const action = "payments.transfer";
/** The overload scenario's flood comes from a calling service of its own (ListFactors, priority low). */
export const floodCaller = "reports-flood";

interface UserState extends BenchUser {
  /** The newest TOTP step this worker has presented for the user: a code is accepted once, and only
   * for a step newer than the last accepted, so a user can pass Verify once per 30 s window. */
  lastStep: number;
}

interface Session {
  subject: string;
  sessionId: string;
}

interface PendingChallenge {
  user: UserState;
  sessionId: string;
  challengeId: string;
}

export interface ScenarioCalls {
  next(call: CallName): NextCall;
  /** Users who may run a critical flow now: no waiting challenge, and their next TOTP step is free. */
  flowUsers(): number;
  prepareSessions(count: number, concurrency: number): Promise<number>;
  prepareChallenges(count: number, concurrency: number): Promise<number>;
  /** Distinct grants stepup-elevated received, each with its own jti. */
  grants(): string[];
  close(): void;
}

export interface ScenarioCallsOptions {
  target: string;
  caller: string;
  users: BenchUser[];
  /** How many grants from stepup-elevated to keep for the offline verifyGrant measurement. */
  grantsToKeep: number;
}

/** Marks which call of a flow `error` came from (see describeFailure). */
const tagStep = (error: unknown, step: string) => {
  if (typeof error === "object" && error !== null) Object.assign(error, { [failedStep]: step });
  return error;
};

const newSessionId = () => `bench-session-${randomBytes(8).toString("hex")}`;
const currentStep = () => Math.floor(Date.now() / 1000 / totpStepSeconds);

/** The calls each scenario makes, and the state they need: users, elevated sessions, challenges. */
export function createScenarioCalls(options: ScenarioCallsOptions): ScenarioCalls {
  // The client's own defaults (deadlines, retries on UNAVAILABLE), without outlier ejection, which
  // could take a busy replica out and unbalance the load being measured.
  const stepgate: StepgateClient = createStepgateClient({
    target: options.target,
    caller: options.caller,
    outlierDetection: { disabled: true },
  });
  // The client does not expose its transport: Noop gets a channel of its own, balanced the same way.
  const channel = new grpc.Channel(options.target, grpc.credentials.createInsecure(), {
    "grpc.service_config": JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  });
  const bench: Client<typeof BenchService> = createClient(BenchService, createGrpcJsTransport({ channel }));
  const noopOptions = { headers: { [callerHeader]: options.caller }, timeoutMs: 5000 };
  // The overload scenario's flood: another calling service, on connections of its own, and without
  // retries (neither the channel's nor the client's replica rounds), so each call offered is one
  // attempt and every refusal reaches the recorder.
  const flood: StepgateClient = createStepgateClient({
    target: options.target,
    caller: floodCaller,
    outlierDetection: { disabled: true },
    retry: { maxAttempts: 1 },
    replicaRetryRounds: 0,
  });
  const payload = "x".repeat(32);

  const users: UserState[] = options.users.map((u) => ({ ...u, lastStep: 0 }));
  let challengeUsers = users;
  const sessions: Session[] = [];
  const checkTokens: string[] = [];
  const grants: string[] = [];
  // At most one waiting challenge per user, in creation order; every user in it may pass Verify now.
  const waiting = new Map<string, PendingChallenge>();
  const cursors = { session: 0, token: 0, user: 0, listed: 0, flow: 0 };

  const mayVerify = (u: UserState) => currentStep() + 1 > u.lastStep;

  const stepUpForChallenge = async (user: UserState) => {
    const sessionId = newSessionId();
    const res = await stepgate.stepUp.stepUp({ subject: user.subject, sessionId, action });
    if (res.outcome.case !== "challenge")
      throw new Error(`stepup: expected a challenge, got ${res.outcome.case}`);
    if (!waiting.has(user.subject) && mayVerify(user)) {
      waiting.set(user.subject, { user, sessionId, challengeId: res.outcome.value.challengeId });
    }
  };

  const verify = async (c: PendingChallenge) => {
    // One step ahead: newer than the step the factor was confirmed with, within the allowed skew.
    const step = currentStep() + 1;
    c.user.lastStep = step;
    return verifyAtStep(stepgate, c, action, step);
  };

  const takeChallenge = () => {
    const first = waiting.values().next();
    if (first.done) return undefined;
    waiting.delete(first.value.user.subject);
    return first.value;
  };

  /** The next user who may run a critical flow, reserved for it (its TOTP step taken); undefined if none. */
  const takeFlowUser = () => {
    for (let scanned = 0; scanned < challengeUsers.length; scanned++) {
      const user = challengeUsers[cursors.flow++ % challengeUsers.length];
      if (user === undefined || waiting.has(user.subject) || !mayVerify(user)) continue;
      user.lastStep = currentStep() + 1;
      return user;
    }
    return undefined;
  };

  const calls: Record<CallName, NextCall> = {
    noop: () => async () => {
      await bench.noop({ payload }, noopOptions);
    },
    "stepup-elevated": () => {
      const s = sessions[cursors.session++ % sessions.length];
      if (s === undefined) return undefined;
      return async () => {
        const res = await stepgate.stepUp.stepUp({ subject: s.subject, sessionId: s.sessionId, action });
        if (res.outcome.case !== "grant")
          throw new Error(`stepup: expected a grant, got ${res.outcome.case}`);
        if (grants.length < options.grantsToKeep) grants.push(res.outcome.value.token);
      };
    },
    checkgrant: () => {
      const token = checkTokens[cursors.token++ % checkTokens.length];
      if (token === undefined) return undefined;
      return async () => {
        await stepgate.stepUp.checkGrant({ token, action });
      };
    },
    "stepup-challenge": () => {
      const user = challengeUsers[cursors.user++ % challengeUsers.length];
      if (user === undefined) return undefined;
      return () => stepUpForChallenge(user);
    },
    verify: () => {
      const c = takeChallenge();
      if (c === undefined) return undefined;
      return async () => {
        await verify(c);
      };
    },
    "list-factors": () => {
      const user = users[cursors.listed++ % users.length];
      if (user === undefined) return undefined;
      return async () => {
        const res = await flood.factors.listFactors({ subject: user.subject });
        if (res.factors.length === 0) throw new Error("listfactors: no factor");
      };
    },
    "critical-flow": () => {
      const user = takeFlowUser();
      if (user === undefined) return undefined;
      return async () => {
        const sessionId = newSessionId();
        const res = await stepgate.stepUp
          .stepUp({ subject: user.subject, sessionId, action })
          .catch((error: unknown) => Promise.reject(tagStep(error, "StepUp")));
        if (res.outcome.case !== "challenge")
          throw new Error(`stepup: expected a challenge, got ${res.outcome.case}`);
        await verify({ user, sessionId, challengeId: res.outcome.value.challengeId }).catch(
          (error: unknown) => Promise.reject(tagStep(error, "Verify")),
        );
      };
    },
  };

  /** Runs `work` over `items`, `concurrency` at a time. */
  const inParallel = async <T>(items: T[], concurrency: number, work: (item: T) => Promise<void>) => {
    let i = 0;
    const lane = async () => {
      while (i < items.length) await work(items[i++] as T);
    };
    await Promise.all(Array.from({ length: concurrency }, lane));
  };

  return {
    next: (call) => calls[call],
    flowUsers: () => challengeUsers.filter((u) => !waiting.has(u.subject) && mayVerify(u)).length,
    async prepareSessions(count, concurrency) {
      // These users are set aside: the challenge scenarios never use them.
      const chosen = users.slice(0, count);
      challengeUsers = users.slice(count);
      await inParallel(chosen, concurrency, async (user) => {
        const sessionId = newSessionId();
        const res = await stepgate.stepUp.stepUp({ subject: user.subject, sessionId, action });
        if (res.outcome.case !== "challenge")
          throw new Error(`prepare: expected a challenge, got ${res.outcome.case}`);
        const token = await verify({ user, sessionId, challengeId: res.outcome.value.challengeId });
        sessions.push({ subject: user.subject, sessionId });
        checkTokens.push(token);
      });
      return sessions.length;
    },
    async prepareChallenges(count, concurrency) {
      const needed = count - waiting.size;
      if (needed <= 0) return waiting.size;
      const candidates = challengeUsers
        .filter((u) => !waiting.has(u.subject) && mayVerify(u))
        .slice(0, needed);
      await inParallel(candidates, concurrency, stepUpForChallenge);
      return waiting.size;
    },
    grants: () => grants,
    close() {
      stepgate.close();
      flood.close();
      channel.close();
    },
  };
}
