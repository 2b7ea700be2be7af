import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { FactorStatus } from "@stepgate/api";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import {
  type Ceremony,
  createSoftwareAuthenticator,
  type PasskeyAlgorithm,
  type SoftwareAuthenticator,
} from "@stepgate/testkit/software-authenticator";
import type { NextCall } from "./closed-loop.ts";
import type { WorkerCommand } from "./worker-messages.ts";

/** Where the bench's passkeys were registered: the policy's default relying party and its page. */
export interface PasskeyParty {
  rpId: string;
  origin: string;
}

/**
 * What a passkey worker (passkey-worker.ts) is sent: its own set-up, and load-worker.ts's commands
 * (so that measure-scenario.ts can drive it), of which it answers `prepare-challenges`, `run` of
 * `verify` (a passkey Verify of the selected algorithm's users) and `close`, and refuses the rest.
 */
export type PasskeyWorkerCommand =
  | { type: "passkey-init"; target: string; caller: string; party: PasskeyParty }
  /** Enrols a passkey of `algorithm` for each subject; answers as `PasskeyCalls.enrol`. */
  | { type: "enrol-passkeys"; algorithm: PasskeyAlgorithm; subjects: string[] }
  /** Which algorithm's users `prepare-challenges` and `run` (verify) use from now on. */
  | { type: "select"; algorithm: PasskeyAlgorithm }
  | WorkerCommand;

/** A subject with one passkey of its own, made and held by this worker. */
interface PasskeyUser {
  subject: string;
  authenticator: SoftwareAuthenticator;
}

/** A challenge StepUp opened and the assertion that answers it, made before the timed phase. */
interface PreparedAssertion {
  user: PasskeyUser;
  sessionId: string;
  challengeId: string;
  assertionJson: string;
}

/** The passkey Verify scenario's state in one worker: its users per algorithm and their waiting answers. */
export interface PasskeyCalls {
  /** Enrols a new software passkey of `algorithm` for each of `subjects` (Begin/FinishPasskeyEnrollment,
   * `concurrency` at a time); resolves with how many this worker now holds of that algorithm, and
   * how many Finish calls so far were refused as already enrolled although this worker's attempt
   * activated them (the client resent them). */
  enrol(
    algorithm: PasskeyAlgorithm,
    subjects: string[],
    concurrency: number,
  ): Promise<{ held: number; resentAfterSuccess: number }>;
  /** The algorithm whose users the next `prepare` and `verify` use. */
  select(algorithm: PasskeyAlgorithm): void;
  /** StepUp, then the authenticator's assertion, for users without a waiting answer, until `count`
   * wait; resolves with how many wait. */
  prepare(count: number, concurrency: number): Promise<number>;
  /** The next Verify with a prepared assertion, or undefined when none is left (the phase ran dry). */
  verify: NextCall;
  close(): void;
}

// Grants for it are reusable (max_age 300 s in the bench's policy), and TOTP is allowed too, so the
// TOTP Verify this one is compared with answers the same action.
const action = "payments.transfer";

/**
 * `work()`, again after a pause (250 ms, then 500 ms, ...) when a replica shed it (UNAVAILABLE past
 * the client's own retries): preparation is untimed, and on a busy 2-core machine a burst of
 * enrolments can meet admission control.
 */
async function untilServed<T>(work: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await work();
    } catch (error) {
      if (attempt >= attempts || ConnectError.from(error).code !== Code.Unavailable) throw error;
      await sleep(250 * attempt);
    }
  }
}

/** Runs `work` over `items`, `concurrency` at a time. */
async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<void>) {
  let i = 0;
  const lane = async () => {
    while (i < items.length) await work(items[i++] as T);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/**
 * Passkey users and their calls for a load worker, through `@stepgate/client` with its default
 * deadlines and retries and no outlier ejection, as the other scenarios' (scenario-calls.ts).
 *
 * An authenticator's signature counter rises with every assertion, and the server refuses (and
 * flags as cloned) one whose counter is not above the last it accepted, so each user has at most
 * one prepared assertion at a time: assertions are verified in the order they were made.
 */
export function createPasskeyCalls(options: {
  target: string;
  caller: string;
  party: PasskeyParty;
}): PasskeyCalls {
  const stepgate: StepgateClient = createStepgateClient({
    target: options.target,
    caller: options.caller,
    outlierDetection: { disabled: true },
  });
  const { party } = options;
  const users = new Map<PasskeyAlgorithm, PasskeyUser[]>();
  let selected: PasskeyAlgorithm = "ES256";
  // Per algorithm, at most one waiting answer per user, in creation order.
  const waitingFor = new Map<PasskeyAlgorithm, Map<string, PreparedAssertion>>();
  const waitingOf = (algorithm: PasskeyAlgorithm) => {
    const found = waitingFor.get(algorithm) ?? new Map<string, PreparedAssertion>();
    waitingFor.set(algorithm, found);
    return found;
  };

  let resentAfterSuccess = 0;
  const enrolOne = async (algorithm: PasskeyAlgorithm, subject: string): Promise<PasskeyUser> => {
    const authenticator = createSoftwareAuthenticator({ algorithm });
    const begun = await stepgate.factors.beginPasskeyEnrollment({
      subject,
      label: "Laptop",
      userName: `${subject}@example.com`,
    });
    const creation = JSON.parse(begun.creationOptionsJson) as { challenge: string };
    const ceremony: Ceremony = { ...party, challenge: creation.challenge };
    try {
      await stepgate.factors.finishPasskeyEnrollment({
        subject,
        factorId: begun.factorId,
        attestationJson: JSON.stringify(authenticator.register(ceremony)),
      });
    } catch (error) {
      // FinishPasskeyEnrollment has no idempotency key: when the client resends it (an answer lost
      // in transport) after the first attempt went through, the resend is refused FAILED_PRECONDITION
      // (already enrolled). The factor is then active with this very attestation.
      if (ConnectError.from(error).code !== Code.FailedPrecondition) throw error;
      const { factors } = await stepgate.factors.listFactors({ subject });
      const mine = factors.find((f) => f.factorId === begun.factorId);
      if (mine?.status !== FactorStatus.ACTIVE) throw error;
      resentAfterSuccess++;
    }
    return { subject, authenticator };
  };

  const prepareOne = async (user: PasskeyUser) => {
    const sessionId = `bench-passkey-${randomBytes(8).toString("hex")}`;
    const res = await stepgate.stepUp.stepUp({ subject: user.subject, sessionId, action });
    if (res.outcome.case !== "challenge")
      throw new Error(`passkey stepup: expected a challenge, got ${res.outcome.case}`);
    const challenge = res.outcome.value;
    if (challenge.passkeyRequestOptionsJson === "")
      throw new Error("passkey stepup: the challenge offers no passkey");
    const request = JSON.parse(challenge.passkeyRequestOptionsJson) as { challenge: string };
    const assertion = user.authenticator.assert({ ...party, challenge: request.challenge });
    waitingOf(selected).set(user.subject, {
      user,
      sessionId,
      challengeId: challenge.challengeId,
      assertionJson: JSON.stringify(assertion),
    });
  };

  const takeAssertion = () => {
    const waiting = waitingOf(selected);
    const first = waiting.values().next();
    if (first.done) return undefined;
    waiting.delete(first.value.user.subject);
    return first.value;
  };

  return {
    async enrol(algorithm, subjects, concurrency) {
      const mine = users.get(algorithm) ?? [];
      users.set(algorithm, mine);
      await inParallel(subjects, concurrency, async (subject) => {
        mine.push(await untilServed(() => enrolOne(algorithm, subject)));
      });
      return { held: mine.length, resentAfterSuccess };
    },
    select(algorithm) {
      selected = algorithm;
    },
    async prepare(count, concurrency) {
      const waiting = waitingOf(selected);
      const needed = count - waiting.size;
      if (needed <= 0) return waiting.size;
      const candidates = (users.get(selected) ?? []).filter((u) => !waiting.has(u.subject)).slice(0, needed);
      await inParallel(candidates, concurrency, (user) => untilServed(() => prepareOne(user)));
      return waiting.size;
    },
    verify: () => {
      const a = takeAssertion();
      if (a === undefined) return undefined;
      return async () => {
        const res = await stepgate.stepUp.verify({
          challengeId: a.challengeId,
          subject: a.user.subject,
          sessionId: a.sessionId,
          action,
          proof: { kind: { case: "passkeyAssertionJson", value: a.assertionJson } },
          idempotencyKey: randomBytes(12).toString("hex"),
        });
        if (!res.grant?.token) throw new Error("passkey verify: no grant");
      };
    },
    close() {
      stepgate.close();
    },
  };
}
