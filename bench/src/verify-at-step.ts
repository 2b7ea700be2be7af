import { randomBytes } from "node:crypto";
import type { StepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/server/factors/totp";
import type { BenchUser } from "./seed-users.ts";

/** RFC 6238's time step, in seconds, as the seeded factors use it. */
export const totpStepSeconds = 30;

/** A challenge StepUp opened, and for whom. */
export interface OpenChallenge {
  user: BenchUser;
  sessionId: string;
  challengeId: string;
}

/**
 * Verify of `c` for `action` with the user's TOTP code of time step `step` and a fresh idempotency
 * key; resolves with the grant's token. Rejects with the call's error, or "verify: no grant".
 */
export async function verifyAtStep(
  stepgate: StepgateClient,
  c: OpenChallenge,
  action: string,
  step: number,
): Promise<string> {
  const res = await stepgate.stepUp.verify({
    challengeId: c.challengeId,
    subject: c.user.subject,
    sessionId: c.sessionId,
    action,
    proof: { kind: { case: "totpCode", value: totpCode(c.user.secret, step * totpStepSeconds) } },
    idempotencyKey: randomBytes(12).toString("hex"),
  });
  if (!res.grant?.token) throw new Error("verify: no grant");
  return res.grant.token;
}
