import { randomUUID } from "node:crypto";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { GrantClaims, StepgateClient } from "@stepgate/client";
import { ApiError } from "./errors.ts";

/** The action this service steps up for before it moves money. */
export const transferAction = "payments.transfer";

/** A transfer Stepgate approved: what `onApproved` is told, the grant token included. */
export interface Approval {
  transferId: string;
  subject: string;
  sessionId: string;
  /** The amount as the user typed it, e.g. `"120.00"`. */
  amount: string;
  payee: string;
  /** The grant (compact JWT): kept server-side with the transfer, never sent to the page. */
  token: string;
  /** Its claims, checked offline against Stepgate's keys. */
  claims: GrantClaims;
}

/** One JSON endpoint: the parsed request body in, the JSON answer out; throws `ApiError` or a Stepgate error. */
export type Handler = (body: Record<string, unknown>) => Promise<unknown>;

// A challenge this service issued for a transfer: Verify names what the challenge was issued for,
// so the page cannot swap the user, session or amount after the fact.
interface PendingTransfer {
  subject: string;
  sessionId: string;
  amount: string;
  payee: string;
  expiresAtMs: number;
}

const maxPending = 10_000;

// Printable text of 1 to `max` characters: the shape Stepgate's own request rules accept.
function text(body: Record<string, unknown>, field: string, max = 128): string {
  const value = body[field];
  if (
    typeof value !== "string" ||
    value.length === 0 ||
    value.length > max ||
    !/^[\x20-\x7e]+$/.test(value)
  ) {
    throw new ApiError(400, { error: "BAD_REQUEST", message: `${field}: 1 to ${max} printable characters` });
  }
  return value;
}

// A browser credential's toJSON(), passed on to Stepgate as JSON text; Stepgate checks its shape.
function credential(body: Record<string, unknown>): string {
  const value = body.credential;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ApiError(400, { error: "BAD_REQUEST", message: "credential: the credential's toJSON()" });
  }
  return JSON.stringify(value);
}

/**
 * The JSON API by path (`POST /api/...`), over `client`. The user and session come from the request
 * body: this example has no sign-in of its own, where a real service takes both from its session.
 * `onApproved` is called once per approved transfer, with the grant, before the answer is sent.
 */
export function paymentsApi(
  client: StepgateClient,
  onApproved: (approval: Approval) => void = () => {},
): Record<string, Handler> {
  const pending = new Map<string, PendingTransfer>();

  const remember = (challengeId: string, transfer: PendingTransfer) => {
    const now = Date.now();
    for (const [id, p] of pending) if (p.expiresAtMs <= now) pending.delete(id);
    // Oldest first: a flood of unanswered challenges evicts itself, not the memory.
    while (pending.size >= maxPending) pending.delete(pending.keys().next().value as string);
    pending.set(challengeId, transfer);
  };

  // The grant is checked offline against the JWKS, as the code that moves the money would.
  const approve = async (token: string, t: Omit<PendingTransfer, "expiresAtMs">) => {
    const claims = await client.verifyGrant(token, {
      action: transferAction,
      subject: t.subject,
      sessionId: t.sessionId,
    });
    const transferId = randomUUID();
    onApproved({ transferId, ...t, token, claims });
    return {
      status: "approved",
      transferId,
      amount: t.amount,
      payee: t.payee,
      acr: claims.acr,
      amr: claims.amr,
    };
  };

  return {
    "/api/passkeys/begin": async (body) => {
      const user = text(body, "user");
      const begun = await client.factors.beginPasskeyEnrollment({
        subject: user,
        label: body.label === undefined ? "Browser passkey" : text(body, "label", 64),
        userName: user,
        displayName: user,
      });
      return { factorId: begun.factorId, creationOptions: JSON.parse(begun.creationOptionsJson) as unknown };
    },

    "/api/passkeys/finish": async (body) => {
      const { factor } = await client.factors.finishPasskeyEnrollment({
        subject: text(body, "user"),
        factorId: text(body, "factorId"),
        attestationJson: credential(body),
      });
      return { factorId: factor?.factorId ?? "", label: factor?.label ?? "" };
    },

    "/api/transfers/approve": async (body) => {
      const subject = text(body, "user");
      const sessionId = text(body, "session");
      const payee = text(body, "payee", 64);
      const amount = text(body, "amount", 16);
      if (!/^\d{1,9}(\.\d{1,2})?$/.test(amount) || Number(amount) <= 0) {
        throw new ApiError(400, {
          error: "BAD_REQUEST",
          message: "amount: a positive number, 2 decimals at most",
        });
      }
      const { outcome } = await client.stepUp.stepUp({
        subject,
        sessionId,
        action: transferAction,
        context: { amount, payee },
      });
      switch (outcome.case) {
        case "grant":
          return approve(outcome.value.token, { subject, sessionId, amount, payee });
        case "challenge": {
          const c = outcome.value;
          if (!c.passkeyRequestOptionsJson) {
            throw new ApiError(409, { error: "PASSKEY_NOT_OFFERED", message: "enrol a passkey first" });
          }
          const expiresAtMs = c.expiresAt ? timestampMs(c.expiresAt) : Date.now() + 60_000;
          remember(c.challengeId, { subject, sessionId, amount, payee, expiresAtMs });
          return {
            status: "challenge",
            challengeId: c.challengeId,
            requestOptions: JSON.parse(c.passkeyRequestOptionsJson) as unknown,
          };
        }
        default:
          throw new ApiError(409, { error: "ENROLLMENT_REQUIRED", message: "enrol a passkey first" });
      }
    },

    "/api/transfers/verify": async (body) => {
      const challengeId = text(body, "challengeId");
      const t = pending.get(challengeId);
      if (!t || t.expiresAtMs <= Date.now()) {
        throw new ApiError(404, { error: "UNKNOWN_CHALLENGE", message: "start the approval again" });
      }
      const { grant } = await client.stepUp.verify({
        challengeId,
        subject: t.subject,
        sessionId: t.sessionId,
        action: transferAction,
        proof: { kind: { case: "passkeyAssertionJson", value: credential(body) } },
        idempotencyKey: randomUUID(),
      });
      // Answered: a refusal above leaves the challenge open for another authenticator.
      pending.delete(challengeId);
      return approve(grant?.token ?? "", t);
    },
  };
}
