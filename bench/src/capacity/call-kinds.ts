import { randomBytes } from "node:crypto";
import { createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { callerHeader } from "@stepgate/api";
import { BenchService } from "@stepgate/api/gen/stepgate/bench/v1/bench_service_pb";
import { createStepgateClient } from "@stepgate/client";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import type { BenchUser } from "../seed-users.ts";
import { totpStepSeconds, verifyAtStep } from "../verify-at-step.ts";

/** One call of a kind, ready to send. */
export type Call = () => Promise<void>;

/** A kind of call measured on its own: `calls` makes (without a store) the calls the window sends. */
export interface CallKind {
  name: string;
  /** Calls in flight at once in the window (1: one after another). */
  concurrency: number;
  calls(count: number): Call[];
}

// payments.transfer in the example policy: aal2, TOTP only, max_age 300 s, grants reusable.
const action = "payments.transfer";
const newSessionId = () => `capacity-${randomBytes(8).toString("hex")}`;

interface Challenge {
  user: BenchUser;
  sessionId: string;
  challengeId: string;
}

/**
 * The kinds, in the order they must run (`verify` answers the challenges `stepup-challenge` made),
 * after `prepare(count)`, which makes every call that the kinds need beforehand: `count` elevated
 * sessions (StepUp, Verify) for `stepup-elevated` and their grants for `checkgrant`, and `count`
 * challenges for `verify x16`. Each Verify is a user of its own (a TOTP code passes once per factor
 * and 30 s step), so `users` needs 3 x count entries.
 */
export function createCallKinds(target: string, caller: string, users: BenchUser[]) {
  const stepgate = createStepgateClient({ target, caller, outlierDetection: { disabled: true } });
  const channel = new grpc.Channel(target, grpc.credentials.createInsecure(), {});
  const bench = createClient(BenchService, createGrpcJsTransport({ channel }));
  let nextUser = 0;
  const takeUsers = (count: number) => {
    const taken = users.slice(nextUser, nextUser + count);
    if (taken.length < count) throw new Error(`capacity: ${users.length} users are too few`);
    nextUser += count;
    return taken;
  };
  const stepUp = async (user: BenchUser, sessionId = newSessionId()): Promise<Challenge> => {
    const res = await stepgate.stepUp.stepUp({ subject: user.subject, sessionId, action });
    if (res.outcome.case !== "challenge")
      throw new Error(`stepup: expected a challenge, got ${res.outcome.case}`);
    return { user, sessionId, challengeId: res.outcome.value.challengeId };
  };
  const verify = async (c: Challenge): Promise<string> => {
    // One step ahead: newer than the step the seeded factor was confirmed with, within the skew.
    return verifyAtStep(stepgate, c, action, Math.floor(Date.now() / 1000 / totpStepSeconds) + 1);
  };
  const elevated: Challenge[] = [];
  const grants: string[] = [];
  const challenges: Challenge[] = [];
  const prepared: Challenge[] = [];
  const prepare = async (count: number) => {
    for (const user of takeUsers(count)) {
      const c = await stepUp(user);
      grants.push(await verify(c));
      elevated.push(c);
    }
    for (const user of takeUsers(count)) prepared.push(await stepUp(user));
  };
  const verifyKind = (name: string, concurrency: number, from: Challenge[]): CallKind => ({
    name,
    concurrency,
    calls: (count) => from.splice(0, count).map((c) => async () => void (await verify(c))),
  });
  const kinds: CallKind[] = [
    {
      name: "noop",
      concurrency: 1,
      calls: (count) =>
        Array.from({ length: count }, () => async () => {
          await bench.noop({ payload: "x".repeat(32) }, { headers: { [callerHeader]: caller } });
        }),
    },
    {
      name: "stepup-elevated",
      concurrency: 1,
      calls: () =>
        elevated.map((s) => async () => {
          const res = await stepgate.stepUp.stepUp({
            subject: s.user.subject,
            sessionId: s.sessionId,
            action,
          });
          if (res.outcome.case !== "grant")
            throw new Error(`stepup: expected a grant, got ${res.outcome.case}`);
        }),
    },
    {
      name: "checkgrant",
      concurrency: 1,
      calls: () =>
        grants.map((token) => async () => {
          // An invalid grant is an error status, so an answer is a valid grant.
          await stepgate.stepUp.checkGrant({ token, action });
        }),
    },
    {
      name: "stepup-challenge",
      concurrency: 1,
      calls: (count) => takeUsers(count).map((user) => async () => void challenges.push(await stepUp(user))),
    },
    verifyKind("verify", 1, challenges),
    verifyKind("verify x16", 16, prepared),
    {
      name: "getjwks",
      concurrency: 1,
      calls: (count) =>
        Array.from({ length: count }, () => async () => void (await stepgate.stepUp.getJwks({}))),
    },
    {
      name: "listfactors",
      concurrency: 1,
      calls: (count) =>
        users.slice(0, count).map((user) => async () => {
          const res = await stepgate.factors.listFactors({ subject: user.subject });
          if (res.factors.length === 0) throw new Error("listfactors: no factor");
        }),
    },
  ];
  return {
    kinds,
    prepare,
    close() {
      stepgate.close();
      channel.close();
    },
  };
}
