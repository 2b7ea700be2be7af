import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { TimestampSchema } from "@bufbuild/protobuf/wkt";
import { StepUpRequestSchema, type StepUpResponse, StepUpResponseSchema } from "@stepgate/api";
import { createStepgateClient } from "@stepgate/client";
import { seedSubjects } from "@stepgate/testkit/seed-subjects";
import { totpCode } from "@stepgate/testkit/totp-code";
import { grpcFrame, grpcHeaders, probeGrpc } from "../latency/grpc-body.ts";
import { ruledAction, ruledRequest } from "./rule-policies.ts";

/** StepUp's two answers the rules bench times: a grant from a fresh elevation, and a new challenge. */
export const rulePaths = ["grant", "challenge"] as const;
export type RulePath = (typeof rulePaths)[number];

/** A StepUp request for h2load to repeat: its method path and gRPC frame. */
export interface RuleRequest {
  scenario: string;
  path: string;
  body: Buffer;
  /** What a successful answer's DATA bytes count as, where they vary (a challenge's expiry). */
  answerBytes?: number;
}

const stepUpPath = "/stepgate.v1.StepUpService/StepUp";

/**
 * The StepUp requests of one replica, each `ruledRequest` for one new subject with a TOTP factor:
 * `grant` on a session elevated by StepUp and Verify first (untimed; the Verify records the
 * subject's facts, so `new_device` no longer holds), `challenge` on a session never verified.
 */
export async function prepareRuleRequests(target: string): Promise<Record<RulePath, RuleRequest>> {
  const client = createStepgateClient({ target, caller: ruledRequest.caller });
  try {
    const [subject] = await seedSubjects(client, 1, { prefix: "bench-rules-" });
    if (!subject) throw new Error("prepare: no subject enrolled");
    const elevated = "bench-rules-elevated";
    const { context, transaction } = ruledRequest;
    const asked = { subject: subject.subject, action: ruledAction };
    const up = await client.stepUp.stepUp({ ...asked, sessionId: elevated, context, transaction });
    if (up.outcome.case !== "challenge") throw new Error(`prepare: StepUp answered ${up.outcome.case}`);
    // The code one step after the confirming one (one step of skew is accepted).
    const code = totpCode(subject.secret, Math.floor(Date.now() / 1000) + 30);
    const verified = await client.stepUp.verify({
      ...asked,
      sessionId: elevated,
      transaction,
      challengeId: up.outcome.value.challengeId,
      proof: { kind: { case: "totpCode", value: code } },
      idempotencyKey: "bench-rules-elevation",
    });
    if (!verified.grant) throw new Error("prepare: Verify gave no grant");
    const body = (sessionId: string) =>
      grpcFrame(
        Buffer.from(
          toBinary(
            StepUpRequestSchema,
            create(StepUpRequestSchema, {
              ...asked,
              sessionId,
              context,
              transaction,
            }),
          ),
        ),
      );
    return {
      grant: { scenario: "grant", path: stepUpPath, body: body(elevated) },
      challenge: { scenario: "challenge", path: stepUpPath, body: body("bench-rules-never-verified") },
    };
  } finally {
    client.close();
  }
}

/**
 * Probes each request once at `address` and fails unless StepUp answers it as its path says with
 * no rule named: every rule evaluated, none holding. Returns the requests, the challenge's with
 * `answerBytes` set (see `challengeAnswerBytes`).
 */
export async function probeRuleRequests(
  address: string,
  requests: Record<RulePath, RuleRequest>,
  scenario: string,
): Promise<Record<RulePath, RuleRequest>> {
  const answers = await Promise.all(
    rulePaths.map((path) =>
      probeGrpc(address, requests[path].path, requests[path].body, grpcHeaders(ruledRequest.caller)),
    ),
  );
  const decoded = answers.map((a) => fromBinary(StepUpResponseSchema, a.body.subarray(5)));
  for (const [i, path] of rulePaths.entries()) {
    const response = decoded[i];
    if (response?.outcome.case !== path || response.rule !== "")
      throw new Error(
        `${scenario}: StepUp answered ${response?.outcome.case ?? "nothing"}${response?.rule ? ` under rule ${response.rule}` : ""}, not a ${path}`,
      );
  }
  return { ...requests, challenge: { ...requests.challenge, answerBytes: challengeAnswerBytes(decoded[1]) } };
}

/**
 * A challenge answer's size (gRPC frame) with an expiry whose nanos take 4 bytes (ms 3 to 268): its
 * expiry is in ms, so the nanos' varint takes 5 bytes in 73% of answers, 4 in 27%, and fewer in
 * 0.3%. Counting answers by this size never counts a successful one as failed; it would miss
 * gRPC errors in under 0.8% of calls.
 */
function challengeAnswerBytes(answer: StepUpResponse | undefined): number {
  if (answer?.outcome.case !== "challenge") return Number.NaN;
  const challenge = answer.outcome.value;
  const expiresAt = create(TimestampSchema, {
    seconds: challenge.expiresAt?.seconds ?? 0n,
    nanos: 3_000_000,
  });
  const shaped = create(StepUpResponseSchema, {
    ...answer,
    outcome: { case: "challenge", value: { ...challenge, expiresAt } },
  });
  return 5 + toBinary(StepUpResponseSchema, shaped).length;
}
