import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { CallOptions } from "@connectrpc/connect";
import type { StepgateClient } from "@stepgate/client";
import { totpCode } from "@stepgate/server/factors/totp";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";

/** One call, ready to send: what it asks is fixed, the client and call options are the sender's. */
export type PreparedCall = (client: StepgateClient, options: CallOptions) => Promise<unknown>;

/** An RPC of StepUpService or FactorService, and how to prepare a call of it that succeeds. */
export interface RpcCase {
  name: string;
  /** Sets up what the call needs through `seeder` (a subject, a challenge, a grant...). */
  prepare(seeder: StepgateClient): Promise<PreparedCall>;
}

const newSession = () => `s-${randomBytes(6).toString("hex")}`;
const nowSeconds = () => Math.floor(Date.now() / 1000);
// The confirming code used this step; the next step's code is good at once (one step of skew).
const nextCode = (secret: string) => totpCode(secret, nowSeconds() + 30);

async function oneUser(seeder: StepgateClient): Promise<FlowSubject> {
  const [user] = await seedSubjects(seeder, 1);
  assert.ok(user);
  return user;
}

/** A user, a session and a Verify challenge for `action` in it. */
async function challenged(seeder: StepgateClient, action: string) {
  const user = await oneUser(seeder);
  const sessionId = newSession();
  const res = await seeder.stepUp.stepUp({ subject: user.subject, sessionId, action });
  assert.equal(res.outcome.case, "challenge");
  return { user, sessionId, action, challengeId: res.outcome.value.challengeId };
}

/** The Verify request answering `challenged`'s challenge, with a caller-chosen idempotency key. */
function verifyRequest(c: Awaited<ReturnType<typeof challenged>>) {
  return {
    challengeId: c.challengeId,
    subject: c.user.subject,
    sessionId: c.sessionId,
    action: c.action,
    proof: { kind: { case: "totpCode" as const, value: nextCode(c.user.secret) } },
    idempotencyKey: `verify-${randomBytes(8).toString("hex")}`,
  };
}

/** A grant for `action` from a Verify (single-use when the action's max_age is 0). */
async function verifiedGrant(seeder: StepgateClient, action: string) {
  const c = await challenged(seeder, action);
  const verified = await seeder.stepUp.verify(verifyRequest(c));
  assert.ok(verified.grant?.token);
  return { ...c, token: verified.grant.token, singleUse: verified.grant.singleUse };
}

/** A user whose session is stepped up to aal2, and a grant for management `action` in it. */
async function managementGrant(seeder: StepgateClient, action: string) {
  const elevated = await verifiedGrant(seeder, "payments.transfer");
  const res = await seeder.stepUp.stepUp({
    subject: elevated.user.subject,
    sessionId: elevated.sessionId,
    action,
  });
  assert.equal(res.outcome.case, "grant", `a grant for ${action} from the elevated session`);
  return { user: elevated.user, sessionId: elevated.sessionId, grant: res.outcome.value.token };
}

/** A second, pending TOTP factor enrolled with a management grant. */
async function pendingFactor(seeder: StepgateClient) {
  const { user, grant } = await managementGrant(seeder, "stepgate.enroll_totp");
  const enrolled = await seeder.factors.enrollTotp({
    subject: user.subject,
    label: "Tablet",
    accountName: `${user.subject}@example.com`,
    grant,
  });
  return { user, factorId: enrolled.factorId, secret: enrolled.secret };
}

/** Every RPC of both services, the consuming CheckGrant of a single-use grant included. */
export const everyRpc: RpcCase[] = [
  {
    name: "StepUp",
    async prepare(seeder) {
      const user = await oneUser(seeder);
      const request = { subject: user.subject, sessionId: newSession(), action: "payments.transfer" };
      return (client, options) => client.stepUp.stepUp(request, options);
    },
  },
  {
    name: "Verify",
    async prepare(seeder) {
      const request = verifyRequest(await challenged(seeder, "payments.transfer"));
      return (client, options) => client.stepUp.verify(request, options);
    },
  },
  {
    name: "CheckGrant",
    async prepare(seeder) {
      const { token, action } = await verifiedGrant(seeder, "payments.transfer");
      return (client, options) => client.stepUp.checkGrant({ token, action }, options);
    },
  },
  {
    name: "CheckGrant (consumes a single-use grant)",
    async prepare(seeder) {
      const { token, action, singleUse } = await verifiedGrant(seeder, "secrets.read");
      assert.equal(singleUse, true, "secrets.read has max_age 0");
      return (client, options) => client.stepUp.checkGrant({ token, action }, options);
    },
  },
  {
    name: "EndSession",
    async prepare(seeder) {
      const { user, sessionId } = await verifiedGrant(seeder, "payments.transfer");
      return (client, options) => client.stepUp.endSession({ subject: user.subject, sessionId }, options);
    },
  },
  {
    name: "GetJwks",
    prepare: async () => (client, options) => client.stepUp.getJwks({}, options),
  },
  {
    name: "EnrollTotp",
    async prepare(seeder) {
      const { user, grant } = await managementGrant(seeder, "stepgate.enroll_totp");
      const request = {
        subject: user.subject,
        label: "Tablet",
        accountName: `${user.subject}@example.com`,
        grant,
      };
      return (client, options) => client.factors.enrollTotp(request, options);
    },
  },
  {
    name: "ConfirmTotp",
    async prepare(seeder) {
      const { user, factorId, secret } = await pendingFactor(seeder);
      const request = { subject: user.subject, factorId, code: totpCode(secret, nowSeconds()) };
      return (client, options) => client.factors.confirmTotp(request, options);
    },
  },
  {
    name: "CreateRecoveryCodes",
    async prepare(seeder) {
      const { user, grant } = await managementGrant(seeder, "stepgate.create_recovery_codes");
      return (client, options) =>
        client.factors.createRecoveryCodes({ subject: user.subject, grant }, options);
    },
  },
  {
    name: "ListFactors",
    async prepare(seeder) {
      const user = await oneUser(seeder);
      return (client, options) => client.factors.listFactors({ subject: user.subject }, options);
    },
  },
  {
    name: "RemoveFactor",
    async prepare(seeder) {
      const { user, grant } = await managementGrant(seeder, "stepgate.remove_factor");
      const request = { subject: user.subject, factorId: user.factorId, grant };
      return (client, options) => client.factors.removeFactor(request, options);
    },
  },
];
