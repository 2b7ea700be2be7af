import { createStepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/server/factors/totp";
import type { BenchUser } from "../seed-users.ts";
import { encodeStrings, grpcFrame } from "./grpc-body.ts";

/** The scenarios whose request can repeat unchanged, so h2load can send one prepared body. */
export const fixedScenarioNames = ["noop", "stepup-elevated", "checkgrant", "getjwks"] as const;
export type FixedScenarioName = (typeof fixedScenarioNames)[number];

/** A scenario's gRPC method path and its request, framed. */
export interface FixedRequest {
  scenario: FixedScenarioName;
  path: string;
  body: Buffer;
}

const action = "payments.transfer";
const stepUp = "/stepgate.v1.StepUpService";

/**
 * The requests h2load repeats. StepUp and CheckGrant need an elevated session and its grant: one
 * StepUp and one Verify through `@stepgate/client` first (untimed). The grant's max_age is 300 s
 * (payments.transfer in the example policy), longer than a latency run.
 */
export async function prepareFixedRequests(
  target: string,
  caller: string,
  user: BenchUser,
): Promise<FixedRequest[]> {
  const client = createStepgateClient({ target, caller });
  try {
    const sessionId = `bench-latency-${Date.now()}`;
    const res = await client.stepUp.stepUp({ subject: user.subject, sessionId, action });
    if (res.outcome.case !== "challenge")
      throw new Error(`prepare: expected a challenge, got ${res.outcome.case}`);
    const step = Math.floor(Date.now() / 30_000) + 1;
    const verified = await client.stepUp.verify({
      challengeId: res.outcome.value.challengeId,
      subject: user.subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode", value: totpCode(user.secret, step * 30) } },
      idempotencyKey: `bench-latency-${step}`,
    });
    const token = verified.grant?.token;
    if (!token) throw new Error("prepare: Verify gave no grant");
    const framed = (fields: Record<number, string>) => grpcFrame(encodeStrings(fields));
    return [
      // NoopRequest.payload: the same 32 bytes as the Node generators send.
      { scenario: "noop", path: "/stepgate.bench.v1.BenchService/Noop", body: framed({ 1: "x".repeat(32) }) },
      // StepUpRequest: subject 1, session_id 2, action 3.
      {
        scenario: "stepup-elevated",
        path: `${stepUp}/StepUp`,
        body: framed({ 1: user.subject, 2: sessionId, 3: action }),
      },
      // CheckGrantRequest: token 1, action 2.
      { scenario: "checkgrant", path: `${stepUp}/CheckGrant`, body: framed({ 1: token, 2: action }) },
      { scenario: "getjwks", path: `${stepUp}/GetJwks`, body: framed({}) },
    ];
  } finally {
    client.close();
  }
}
