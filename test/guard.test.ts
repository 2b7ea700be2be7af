// @stepgate/guard on both server stacks, through a real replica: the payments example's
// TransferService served by connect-node (guard.connect) and by a plain grpc-js server
// (guard.grpc), called by gRPC clients. Missing, foreign, garbage, oversized, spent and
// mismatched grants; a missing user; a malformed transfer; and Stepgate down.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fromBinary } from "@bufbuild/protobuf";
import { type Client, Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { errorDomain, grantHeader, Method, StepUpRequiredSchema } from "@stepgate/api";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";
import { createStepgateClient, type StepgateClient } from "@stepgate/client";
import { TransferService } from "@stepgate/example-payments/gen/payments/v1/transfer_service_pb";
import {
  type ExecutedTransfer,
  sessionHeader,
  startTransferService,
  transferGuard,
  userHeader,
} from "@stepgate/example-payments/transfer-service";
import { createGrpcServiceDefinition } from "@stepgate/grpc-bridge";
import { admittedGrantOf, type GuardDecision, stepUpRequiredOf } from "@stepgate/guard";
import { bufCurl } from "./support/buf-curl.ts";
import { enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import { type Harness, startStepgate, testPolicy } from "./support/stepgate.ts";

// The test policy, with a high-value action as the example's: single-use grants bound to the transaction.
const policy = testPolicy.replace(
  "actions:\n",
  "actions:\n  payments.high_value: { acr: aal2, max_age: 0, methods: [totp], bind_transaction: true }\n",
);
const repoRoot = join(import.meta.dirname, "..");
const transfer = { amount: "120.00", currency: "EUR", payee: "ACME Ltd", fromAccount: "DE-001" };
const highValue = { ...transfer, amount: "5000.00" };

/** A plain grpc-js server of TransferService behind `guard.grpc`; its handler records what it ran. */
async function startGrpcJsTransfers(
  stepgate: StepgateClient,
  ran: ExecutedTransfer[],
  decisions: GuardDecision[],
) {
  const guard = transferGuard(stepgate, (d) => decisions.push(d));
  const server = new grpc.Server({ interceptors: [guard.grpc] });
  server.addService(createGrpcServiceDefinition(TransferService), {
    transfer(call: grpc.ServerUnaryCall<typeof transfer, unknown>, done: grpc.sendUnaryData<unknown>) {
      const grant = admittedGrantOf(call);
      if (!grant) return done({ code: grpc.status.INTERNAL, details: "not admitted" });
      ran.push({
        transferId: "t",
        ...call.request,
        subject: grant.subject,
        sessionId: grant.sessionId,
        action: grant.action,
        grant,
      });
      done(null, {
        transferId: `t-${ran.length}`,
        action: grant.action,
        acr: grant.acr,
        amr: [...grant.amr],
        singleUse: grant.checkedOnline,
      });
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  return { port, close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())) };
}

for (const stack of ["connect-node", "grpc-js"] as const) {
  describe(`@stepgate/guard on ${stack}`, () => {
    let h: Harness;
    // The guard's own client: it outlives the replica, as a protected service's does.
    let stepgate: StepgateClient;
    let stepgateUp = true;
    let service: { port: number; close(): Promise<void> };
    let transfers: Client<typeof TransferService>;
    const ran: ExecutedTransfer[] = [];
    const decisions: GuardDecision[] = [];

    before(async () => {
      h = await startStepgate({ policy });
      stepgate = createStepgateClient({ target: h.target, caller: "payments", now: h.clock.now });
      service =
        stack === "grpc-js"
          ? await startGrpcJsTransfers(stepgate, ran, decisions)
          : await startTransferService({
              stepgate,
              port: 0,
              onTransfer: (t) => ran.push(t),
              onDecision: (d) => decisions.push(d),
            });
      transfers = createClient(
        TransferService,
        createGrpcTransport({ baseUrl: `http://127.0.0.1:${service.port}` }),
      );
    });
    after(async () => {
      await service?.close();
      stepgate?.close();
      if (stepgateUp) await h?.close();
    });

    const as = (subject: string, sessionId: string, grant?: string) => ({
      headers: {
        [userHeader]: subject,
        [sessionHeader]: sessionId,
        ...(grant === undefined ? {} : { [grantHeader]: grant }),
      },
    });

    /** The refusal of a call that must fail: its code, StepUpRequired detail, ErrorInfo and trailers. */
    async function refusal(call: Promise<unknown>) {
      const error = await call.then(
        () => assert.fail("the call went through"),
        (e: unknown) => e,
      );
      assert.ok(error instanceof ConnectError, String(error));
      const info = error.findDetails(ErrorInfoSchema).find((i) => i.domain === errorDomain);
      return { error, need: stepUpRequiredOf(error), info };
    }

    /** Answers the challenge of a STEP_UP_REQUIRED error with TOTP; returns the grant. */
    async function answer(
      need: ReturnType<typeof stepUpRequiredOf>,
      subject: string,
      sessionId: string,
      secret: string,
      t = transfer,
    ) {
      assert.equal(need?.next.case, "challenge");
      const verified = await h.client.stepUp.verify({
        challengeId: need.next.value.challengeId,
        subject,
        sessionId,
        action: need.action,
        proof: { kind: { case: "totpCode", value: h.code(secret) } },
        idempotencyKey: newKey(),
        transaction: { amount: t.amount, currency: t.currency, payee: t.payee, resource: t.fromAccount },
      });
      h.clock.advance(30_000);
      return verified.grant?.token ?? "";
    }

    it("without a factor: STEP_UP_REQUIRED with enrollment_required, and the handler does not run", async () => {
      const { error, need, info } = await refusal(
        transfers.transfer(transfer, as(newSubject(), newSession())),
      );
      assert.equal(error.code, Code.Unauthenticated);
      assert.equal(need?.next.case, "enrollmentRequired");
      assert.deepEqual(need.acrValues, ["aal2"]);
      assert.equal(info?.reason, "STEP_UP_REQUIRED");
      assert.equal(ran.length, 0);
    });

    it("without a grant: the RFC 9470 error with a challenge; with the answered grant: admitted, then reused", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const { error, need, info } = await refusal(transfers.transfer(transfer, as(subject, sessionId)));
      assert.equal(error.code, Code.Unauthenticated);
      assert.equal(need?.error, "insufficient_user_authentication");
      assert.equal(need.action, "payments.transfer");
      assert.deepEqual(need.acrValues, ["aal2"]);
      assert.equal(need.maxAge, 300);
      assert.equal(need.grantRefusal, "GRANT_MISSING");
      assert.equal(need.next.case, "challenge");
      assert.deepEqual(need.next.value.methods, [Method.TOTP]);
      assert.deepEqual(info?.metadata, {
        error: "insufficient_user_authentication",
        action: "payments.transfer",
        acr_values: "aal2",
        max_age: "300",
        grant_refusal: "GRANT_MISSING",
        challenge_id: need.next.value.challengeId,
      });
      assert.equal(
        error.metadata.get("www-authenticate"),
        'Bearer error="insufficient_user_authentication", error_description="A stronger or fresher authentication is required", acr_values="aal2", max_age=300',
      );

      const grant = await answer(need, subject, sessionId, secret);
      const done = await transfers.transfer(transfer, as(subject, sessionId, grant));
      assert.equal(done.acr, "aal2");
      assert.deepEqual(done.amr, ["otp"]);
      assert.equal(done.singleUse, false);
      assert.equal(ran.at(-1)?.grant.subject, subject);
      // max_age 300: the grant goes again; without it, StepUp finds the session fresh and admits too.
      await transfers.transfer(transfer, as(subject, sessionId, grant));
      await transfers.transfer(transfer, as(subject, sessionId));
      assert.deepEqual(
        decisions.slice(-3).map((d) => [d.outcome, d.fromStepUp]),
        [
          ["admitted", false],
          ["admitted", false],
          ["admitted", true],
        ],
      );

      // Someone else's grant, garbage and an oversized header: each asks for a step-up, none runs.
      const before = ran.length;
      const other = await refusal(transfers.transfer(transfer, as(newSubject(), sessionId, grant)));
      assert.equal(other.need?.grantRefusal, "GRANT_MISMATCH");
      const garbage = await refusal(transfers.transfer(transfer, as(subject, newSession(), "not-a-grant")));
      assert.equal(garbage.need?.grantRefusal, "GRANT_INVALID");
      const huge = await refusal(transfers.transfer(transfer, as(subject, newSession(), "e".repeat(5000))));
      assert.equal(huge.need?.grantRefusal, "GRANT_INVALID");
      assert.equal(ran.length, before);
    });

    it("a single-use grant bound to its transaction: consumed once, refused spent or for another transfer", async () => {
      const subject = newSubject();
      const sessionId = newSession();
      const { secret } = await enrolTotp(h, subject);
      const first = await refusal(transfers.transfer(highValue, as(subject, sessionId)));
      assert.equal(first.need?.action, "payments.high_value");
      assert.equal(first.need.maxAge, 0);
      assert.equal(first.need.next.case, "challenge");
      assert.match(first.need.next.value.transactionSummary, /5000(\.00)? EUR to ACME Ltd/);
      const grant = await answer(first.need, subject, sessionId, secret, highValue);

      const other = await refusal(
        transfers.transfer({ ...highValue, amount: "5000.01" }, as(subject, sessionId, grant)),
      );
      assert.equal(other.need?.grantRefusal, "GRANT_TRANSACTION_MISMATCH");
      const done = await transfers.transfer(highValue, as(subject, sessionId, grant));
      assert.equal(done.singleUse, true);
      const spent = await refusal(transfers.transfer(highValue, as(subject, sessionId, grant)));
      assert.equal(spent.need?.grantRefusal, "GRANT_CONSUMED");
      assert.equal(ran.filter((t) => t.grant.grantId === ran.at(-1)?.grant.grantId).length, 1);
    });

    it("an independent client (buf curl) reads the refusal: code 16, www-authenticate, StepUpRequired", async () => {
      const subject = newSubject();
      await enrolTotp(h, subject);
      const result = await bufCurl([
        "--schema",
        join(repoRoot, "examples/payments/proto"),
        "-v",
        "-H",
        `${userHeader}: ${subject}`,
        "-H",
        `${sessionHeader}: ${newSession()}`,
        "-d",
        JSON.stringify(transfer),
        `http://127.0.0.1:${service.port}/payments.v1.TransferService/Transfer`,
      ]);
      // buf curl exits with the gRPC code shifted left by 3: UNAUTHENTICATED (16).
      assert.equal(result.code, 16 << 3, result.stderr);
      assert.match(result.stderr, /www-authenticate: Bearer error="insufficient_user_authentication"/i);
      const printed = JSON.parse(result.stderr.slice(result.stderr.search(/^\{$/m))) as {
        code: string;
        details?: { type: string; value: string }[];
      };
      assert.equal(printed.code, "unauthenticated");
      // Printed as the base64 of the message: decoded with the published schema, nothing else.
      const detail = printed.details?.find((d) => d.type === "stepgate.v1.StepUpRequired");
      assert.ok(detail, result.stderr);
      const need = fromBinary(StepUpRequiredSchema, Buffer.from(detail.value, "base64"));
      assert.equal(need.action, "payments.transfer");
      assert.equal(need.maxAge, 300);
      assert.equal(need.next.case, "challenge");
    });

    it("bad calls: no user is UNAUTHENTICATED without a step-up; a malformed transfer is INVALID_ARGUMENT", async () => {
      const noUser = await refusal(
        transfers.transfer(transfer, { headers: { [sessionHeader]: newSession() } }),
      );
      assert.equal(noUser.error.code, Code.Unauthenticated);
      assert.equal(noUser.need, undefined);
      for (const bad of [
        { ...transfer, amount: "" },
        { ...transfer, amount: "1e9" },
        { ...transfer, currency: "euro" },
        { ...transfer, payee: "" },
      ]) {
        const r = await refusal(transfers.transfer(bad, as(newSubject(), newSession())));
        assert.equal(r.error.code, Code.InvalidArgument, JSON.stringify(bad));
        assert.equal(r.need, undefined);
      }
    });

    it("with Stepgate down: UNAVAILABLE, never admitted", async () => {
      const before = ran.length;
      stepgateUp = false;
      await h.close();
      const down = await refusal(transfers.transfer(transfer, as(newSubject(), newSession())));
      assert.equal(down.error.code, Code.Unavailable);
      assert.equal(down.need, undefined);
      assert.equal(ran.length, before);
      assert.equal(decisions.at(-1)?.outcome, "unavailable");
    });
  });
}
