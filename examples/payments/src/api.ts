import { randomUUID } from "node:crypto";
import { timestampMs } from "@bufbuild/protobuf/wkt";
import type { Client } from "@connectrpc/connect";
import { type Challenge, grantHeader, Method, type StepUpRequired } from "@stepgate/api";
import type { StepgateClient } from "@stepgate/client";
import { stepUpRequiredOf } from "@stepgate/guard";
import { toDataURL } from "qrcode";
import { ApiError } from "./errors.ts";
import type { TransferService } from "./gen/payments/v1/transfer_service_pb.ts";
import { sessionHeader, userHeader } from "./transfer-service.ts";

/** One JSON endpoint: the parsed request body in, the JSON answer out; throws `ApiError` or a ConnectError. */
export type Handler = (body: Record<string, unknown>) => Promise<unknown>;

/** A transfer as the page asks for it. */
interface TransferInput {
  amount: string;
  currency: string;
  payee: string;
  fromAccount: string;
}

// A challenge this server relayed: Verify and the retried call use what it was issued for, so the
// page cannot swap the user, session, action or transfer after the fact.
interface Pending {
  subject: string;
  sessionId: string;
  action: string;
  transfer?: TransferInput;
  expiresAtMs: number;
}

const maxEntries = 10_000;
const methodNames: Partial<Record<Method, string>> = {
  [Method.TOTP]: "totp",
  [Method.RECOVERY_CODE]: "recovery_code",
  [Method.PASSKEY]: "passkey",
};

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

// A Map that forgets its oldest entries first: a flood of abandoned flows evicts itself, not the memory.
function bounded<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  while (map.size >= maxEntries) map.delete(map.keys().next().value as string);
  map.set(key, value);
}

/** The page's view of a STEP_UP_REQUIRED error: what to show and how the user may answer. */
function stepUpView(need: StepUpRequired, summary: string) {
  const base = {
    error: "STEP_UP_REQUIRED",
    action: need.action,
    acrValues: need.acrValues,
    maxAge: need.maxAge,
    grantRefusal: need.grantRefusal,
    rule: need.rule,
    message: `approve ${need.action} to go on`,
  };
  if (need.next.case === "enrollmentRequired") {
    const methods = need.next.value.methods.map((m) => methodNames[m] ?? "unknown");
    return { ...base, enrollmentRequired: { methods } };
  }
  const c = need.next.value as Challenge;
  return {
    ...base,
    challenge: {
      challengeId: c.challengeId,
      methods: c.methods.map((m) => methodNames[m] ?? "unknown"),
      summary: c.transactionSummary || summary,
      expiresAt: c.expiresAt ? new Date(timestampMs(c.expiresAt)).toISOString() : undefined,
      ...(c.passkeyRequestOptionsJson
        ? { passkeyRequestOptions: JSON.parse(c.passkeyRequestOptionsJson) as unknown }
        : {}),
    },
  };
}

/**
 * The JSON API by path (`POST /api/...`), over Stepgate (`stepgate`, for factors and Verify) and the
 * guarded TransferService (`transfers`). The user and session come from the request body: this
 * example has no sign-in of its own, where a real front end takes both from its session cookie.
 * Grants stay here, kept per session; the page sees acr, amr and the step-up it must answer.
 */
export function paymentsApi(
  stepgate: StepgateClient,
  transfers: Client<typeof TransferService>,
): Record<string, Handler> {
  const pending = new Map<string, Pending>();
  // The session's latest grant, sent with each transfer until the guard asks for another.
  const grants = new Map<string, string>();
  const sessionKey = (subject: string, sessionId: string) => `${subject}\n${sessionId}`;

  const remember = (need: StepUpRequired, p: Omit<Pending, "expiresAtMs">) => {
    if (need.next.case !== "challenge") return;
    const c = need.next.value;
    const now = Date.now();
    for (const [id, old] of pending) if (old.expiresAtMs <= now) pending.delete(id);
    bounded(pending, c.challengeId, {
      ...p,
      expiresAtMs: c.expiresAt ? timestampMs(c.expiresAt) : now + 60_000,
    });
  };

  // Calls the guarded Transfer with the session's grant; a STEP_UP_REQUIRED answer becomes HTTP 401.
  const transfer = async (subject: string, sessionId: string, t: TransferInput) => {
    const grant = grants.get(sessionKey(subject, sessionId));
    try {
      const done = await transfers.transfer(t, {
        headers: {
          [userHeader]: subject,
          [sessionHeader]: sessionId,
          ...(grant ? { [grantHeader]: grant } : {}),
        },
      });
      return {
        status: "sent",
        transferId: done.transferId,
        action: done.action,
        acr: done.acr,
        amr: done.amr,
        singleUse: done.singleUse,
      };
    } catch (error) {
      const need = stepUpRequiredOf(error);
      if (!need) throw error;
      remember(need, { subject, sessionId, action: need.action, transfer: t });
      throw new ApiError(
        401,
        stepUpView(need, `Send ${t.amount} ${t.currency} to ${t.payee} from ${t.fromAccount}`),
      );
    }
  };

  // A grant for a factor change, once a factor exists: from the session's fresh elevation, else a step-up.
  const managementGrant = async (subject: string, sessionId: string, action: string): Promise<string> => {
    const { factors } = await stepgate.factors.listFactors({ subject });
    if (factors.length === 0) return "";
    const { outcome } = await stepgate.stepUp.stepUp({ subject, sessionId, action });
    if (outcome.case === "grant") return outcome.value.token;
    if (outcome.case !== "challenge")
      throw new ApiError(409, { error: "ENROLLMENT_REQUIRED", message: "no factor reaches the level" });
    const c = outcome.value;
    const need = {
      error: "insufficient_user_authentication",
      action,
      acrValues: [c.requiredAcr],
      maxAge: c.maxAge,
      grantRefusal: "GRANT_MISSING",
      next: { case: "challenge", value: c },
    } as StepUpRequired;
    remember(need, { subject, sessionId, action });
    throw new ApiError(401, stepUpView(need, "Add a second factor to your account"));
  };

  return {
    "/api/totp/begin": async (body) => {
      const subject = text(body, "user");
      const grant = await managementGrant(subject, text(body, "session"), "stepgate.enroll_totp");
      const enrolled = await stepgate.factors.enrollTotp({
        subject,
        label: "Authenticator app",
        accountName: subject,
        grant,
      });
      // The secret is shown once, as a QR code and for manual entry; it is never stored here.
      return {
        factorId: enrolled.factorId,
        qr: await toDataURL(enrolled.otpauthUri, { margin: 1, width: 200 }),
        secret: enrolled.secret,
      };
    },

    "/api/totp/confirm": async (body) => {
      const code = text(body, "code", 6);
      if (!/^\d{6}$/.test(code))
        throw new ApiError(400, { error: "BAD_REQUEST", message: "code: six digits" });
      const { factor } = await stepgate.factors.confirmTotp({
        subject: text(body, "user"),
        factorId: text(body, "factorId"),
        code,
      });
      return { factorId: factor?.factorId ?? "", label: factor?.label ?? "" };
    },

    "/api/passkeys/begin": async (body) => {
      const user = text(body, "user");
      const grant = await managementGrant(user, text(body, "session"), "stepgate.enroll_passkey");
      const begun = await stepgate.factors.beginPasskeyEnrollment({
        subject: user,
        label: body.label === undefined ? "Browser passkey" : text(body, "label", 64),
        userName: user,
        displayName: user,
        grant,
      });
      return { factorId: begun.factorId, creationOptions: JSON.parse(begun.creationOptionsJson) as unknown };
    },

    "/api/passkeys/finish": async (body) => {
      const { factor } = await stepgate.factors.finishPasskeyEnrollment({
        subject: text(body, "user"),
        factorId: text(body, "factorId"),
        attestationJson: credential(body),
      });
      return { factorId: factor?.factorId ?? "", label: factor?.label ?? "" };
    },

    "/api/transfers": async (body) =>
      transfer(text(body, "user"), text(body, "session"), {
        amount: text(body, "amount", 16),
        currency: text(body, "currency", 3),
        payee: text(body, "payee", 64),
        fromAccount: text(body, "fromAccount", 34),
      }),

    "/api/step-up/verify": async (body) => {
      const challengeId = text(body, "challengeId");
      const p = pending.get(challengeId);
      if (!p || p.expiresAtMs <= Date.now()) {
        throw new ApiError(404, { error: "UNKNOWN_CHALLENGE", message: "start again" });
      }
      const proof =
        body.code === undefined
          ? { kind: { case: "passkeyAssertionJson" as const, value: credential(body) } }
          : { kind: { case: "totpCode" as const, value: text(body, "code", 6) } };
      const { transfer: t } = p;
      const { grant } = await stepgate.stepUp.verify({
        challengeId,
        subject: p.subject,
        sessionId: p.sessionId,
        action: p.action,
        proof,
        idempotencyKey: randomUUID(),
        ...(t
          ? {
              transaction: {
                amount: t.amount,
                currency: t.currency,
                payee: t.payee,
                resource: t.fromAccount,
              },
            }
          : {}),
      });
      // Answered: a refusal above leaves the challenge open for another try.
      pending.delete(challengeId);
      if (!t) return { status: "approved", action: p.action, acr: grant?.acr ?? "", amr: grant?.amr ?? [] };
      bounded(grants, sessionKey(p.subject, p.sessionId), grant?.token ?? "");
      return transfer(p.subject, p.sessionId, t);
    },
  };
}
