import { randomUUID } from "node:crypto";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import type { StepgateClient } from "@stepgate/client";
import {
  type AdmittedGrant,
  admittedGrantOf,
  createGuard,
  type GuardDecision,
  protect,
} from "@stepgate/guard";
import { type TransferRequest, TransferService } from "./gen/payments/v1/transfer_service_pb.ts";

/** Above this amount a transfer is `payments.high_value` (aal3, single-use grants bound to it). */
export const highValueThreshold = 1000;

/** The headers that stand in for the verified user token a real service would read the user from. */
export const userHeader = "payments-user";
export const sessionHeader = "payments-session";

/** A transfer the service executed, with the grant it went through with. */
export interface ExecutedTransfer {
  transferId: string;
  subject: string;
  sessionId: string;
  amount: string;
  currency: string;
  payee: string;
  action: string;
  grant: AdmittedGrant;
}

/** The action a transfer needs: the policy decides acr, max_age and single use for each. */
export function transferAction(request: Pick<TransferRequest, "amount">): string {
  return Number(request.amount) > highValueThreshold ? "payments.high_value" : "payments.transfer";
}

// Checked before the guard runs, so a malformed transfer never starts a step-up.
function assertTransfer(request: TransferRequest): void {
  const bad = (field: string, rule: string) => new ConnectError(`${field}: ${rule}`, Code.InvalidArgument);
  if (!/^\d{1,9}(\.\d{1,2})?$/.test(request.amount) || Number(request.amount) <= 0)
    throw bad("amount", "a positive decimal, 2 decimals at most");
  if (!/^[A-Z]{3}$/.test(request.currency)) throw bad("currency", "an ISO 4217 code, e.g. EUR");
  if (request.payee.length === 0 || request.payee.length > 64) throw bad("payee", "1 to 64 characters");
  if (!/^[A-Za-z0-9-]{1,34}$/.test(request.fromAccount))
    throw bad("from_account", "1 to 34 letters, digits or -");
}

/**
 * The guard of TransferService.Transfer: the action by amount, the user and session from the
 * stand-in headers, and the transfer's details as the transaction (bound where the policy says).
 */
export function transferGuard(stepgate: StepgateClient, onDecision?: (d: GuardDecision) => void) {
  return createGuard({
    stepgate,
    methods: [
      protect(TransferService.method.transfer, {
        action: (request) => {
          assertTransfer(request);
          return transferAction(request);
        },
        session: (_request, headers) => ({
          subject: headers.get(userHeader) ?? "",
          sessionId: headers.get(sessionHeader) ?? "",
        }),
        transaction: (r) => ({
          amount: r.amount,
          currency: r.currency,
          payee: r.payee,
          resource: r.fromAccount,
        }),
        context: () => ({ service: "payments-example" }),
      }),
    ],
    ...(onDecision ? { onDecision } : {}),
  });
}

/** What `startTransferService` takes. */
export interface TransferServiceOptions {
  /** The service's Stepgate client (its calling-service name is the grants' audience). */
  stepgate: StepgateClient;
  /** TCP port (0: any free one). */
  port: number;
  host?: string;
  /** Told of each executed transfer, after the guard admitted it. */
  onTransfer?: (transfer: ExecutedTransfer) => void;
  /** The guard's decisions, for logs. */
  onDecision?: (decision: GuardDecision) => void;
}

/**
 * Starts TransferService over gRPC (h2c; Connect, gRPC and gRPC-Web protocols, connect-node) with
 * Transfer behind the guard. Resolves once it listens; rejects with the `listen` error.
 */
export async function startTransferService(
  options: TransferServiceOptions,
): Promise<{ port: number; close(): Promise<void> }> {
  const guard = transferGuard(options.stepgate, options.onDecision);
  const routes = (router: ConnectRouter) =>
    router.service(TransferService, {
      transfer(request, ctx) {
        // The guard admitted the call: its grant names the session and, where bound, this transaction.
        const grant = admittedGrantOf(ctx);
        if (!grant) throw new ConnectError("not admitted", Code.Internal);
        const transfer: ExecutedTransfer = {
          transferId: randomUUID(),
          subject: grant.subject,
          sessionId: grant.sessionId,
          amount: request.amount,
          currency: request.currency,
          payee: request.payee,
          action: grant.action,
          grant,
        };
        options.onTransfer?.(transfer);
        return {
          transferId: transfer.transferId,
          action: grant.action,
          acr: grant.acr,
          amr: [...grant.amr],
          singleUse: grant.checkedOnline,
        };
      },
    });
  const server = http2.createServer(connectNodeAdapter({ routes, interceptors: [guard.connect] }));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, options.host ?? "127.0.0.1", () => resolve());
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (s) => {
    sessions.add(s);
    s.once("close", () => sessions.delete(s));
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const s of sessions) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
