// Grants bound to one transaction (the policy's bind_transaction), through a real replica: StepUp
// and Verify take the details, each transaction is proved, the grant carries their digest, and
// CheckGrant and the offline verifier refuse it for any other transaction.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { transactionDigest } from "@stepgate/grant";
import { expectFailure, failure } from "./support/errors.ts";
import { enrolTotp, newKey, newSession, newSubject } from "./support/flows.ts";
import {
  enrolPasskey,
  passkeyChallenge,
  passkeyPolicy,
  paymentsParty,
  verifyPasskey,
} from "./support/passkeys.ts";
import { type Harness, startStepgate } from "./support/stepgate.ts";

const action = "payments.bound";
// Reusable grants (max_age 300), so the binding, not single use, is what refuses a second transaction.
const policy = passkeyPolicy.replace(
  "actions:\n",
  `actions:\n  ${action}: { acr: aal2, max_age: 300, methods: [passkey, totp], bind_transaction: true }\n`,
);
const transfer = { amount: "10.50", currency: "EUR", payee: "ACME Ltd", resource: "invoice-42" };

describe("grants bound to a transaction", () => {
  let h: Harness;
  before(async () => {
    h = await startStepgate({ policy });
  });
  after(() => h.close());

  /** A TOTP user, a challenge for `transaction` and the Verify request answering it. */
  async function challenged(transaction: object | undefined = transfer) {
    const subject = newSubject();
    const sessionId = newSession();
    const { secret } = await enrolTotp(h, subject);
    const res = await h.client.stepUp.stepUp({
      subject,
      sessionId,
      action,
      ...(transaction ? { transaction } : {}),
    });
    assert.equal(res.outcome.case, "challenge");
    const request = {
      challengeId: res.outcome.value.challengeId,
      subject,
      sessionId,
      action,
      proof: { kind: { case: "totpCode" as const, value: h.code(secret) } },
      idempotencyKey: newKey(),
    };
    return { subject, sessionId, secret, challenge: res.outcome.value, request };
  }

  it("binds the challenge and the grant to the transaction, and shows its summary", async () => {
    const { challenge, request, subject, sessionId } = await challenged();
    assert.equal(challenge.transactionSummary, "Pay 10.5 EUR to ACME Ltd (invoice-42)");
    const verified = await h.client.stepUp.verify({
      ...request,
      transaction: { ...transfer, amount: "10.5" },
    });
    const token = verified.grant?.token ?? "";
    const claims = await h.client.verifyGrant(token, { action, subject, sessionId, transaction: transfer });
    assert.equal(claims.txn, transactionDigest(transfer));
    const online = await h.client.stepUp.checkGrant({
      token,
      action,
      transaction: { ...transfer, amount: "010.50" },
    });
    assert.equal(online.subject, subject);
  });

  it("refuses the grant for any other transaction, without details, online and offline", async () => {
    const { request, subject, sessionId } = await challenged();
    const token = (await h.client.stepUp.verify({ ...request, transaction: transfer })).grant?.token ?? "";
    for (const other of [
      { ...transfer, amount: "1000.50" },
      { ...transfer, currency: "USD" },
      { ...transfer, payee: "Mallory" },
      { ...transfer, resource: "invoice-43" },
    ]) {
      await expectFailure(
        h.client.stepUp.checkGrant({ token, action, transaction: other }),
        Code.PermissionDenied,
        "TRANSACTION_MISMATCH",
      );
      const offline = await failure(
        h.client.verifyGrant(token, { action, subject, sessionId, transaction: other }),
      );
      assert.equal(offline.message, "grant is bound to another transaction");
    }
    await expectFailure(
      h.client.stepUp.checkGrant({ token, action }),
      Code.PermissionDenied,
      "TRANSACTION_MISMATCH",
    );
    await assert.rejects(
      h.client.verifyGrant(token, { action, subject, sessionId }),
      /bound to a transaction/,
    );
  });

  it("asks for a new proof for each transaction: no elevation is reused", async () => {
    const { request, subject, sessionId } = await challenged();
    await h.client.stepUp.verify({ ...request, transaction: transfer });
    const again = await h.client.stepUp.stepUp({ subject, sessionId, action, transaction: transfer });
    assert.equal(again.outcome.case, "challenge");
  });

  it("refuses StepUp without details or with bad ones, and Verify for another transaction, writing nothing", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    await enrolTotp(h, subject);
    await expectFailure(
      h.client.stepUp.stepUp({ subject, sessionId, action }),
      Code.FailedPrecondition,
      "TRANSACTION_REQUIRED",
    );
    for (const [bad, refusal] of [
      [{ ...transfer, amount: "1e3" }, "amount_not_decimal"],
      [{ ...transfer, amount: "10,50" }, "amount_not_decimal"],
      [{ ...transfer, currency: "eur" }, "currency_not_iso4217"],
      [{ ...transfer, payee: "P\u0430yPal" }, "payee_mixed_scripts"],
      [{ ...transfer, payee: "ACME\u202Eevil" }, "payee_control_characters"],
      [{ ...transfer, payee: "" }, "payee_empty"],
    ] as const) {
      const f = await expectFailure(
        h.client.stepUp.stepUp({ subject, sessionId, action, transaction: bad }),
        Code.InvalidArgument,
        "TRANSACTION_INVALID",
      );
      assert.equal(f.metadata.refusal, refusal);
    }
    // Oversized fields are refused by the request rules before the use case, on every RPC that takes them.
    const huge = {
      amount: "1".repeat(33),
      currency: "EURO",
      payee: "x".repeat(513),
      resource: "r".repeat(257),
    };
    const fields = [
      "transaction.amount",
      "transaction.currency",
      "transaction.payee",
      "transaction.resource",
    ];
    const oversized = await expectFailure(
      h.client.stepUp.stepUp({ subject, sessionId, action, transaction: huge }),
      Code.InvalidArgument,
    );
    assert.deepEqual(oversized.fields, fields);
    const checked = await expectFailure(
      h.client.stepUp.checkGrant({ token: "a.b.c", action, transaction: huge }),
      Code.InvalidArgument,
    );
    assert.deepEqual(checked.fields, fields);
    const { request } = await challenged();
    await h.flushAudit();
    const before = await h.db.query("select count(*) as n from audit_events where subject = $1", [
      request.subject,
    ]);
    await expectFailure(
      h.client.stepUp.verify({ ...request, transaction: { ...transfer, payee: "Mallory" } }),
      Code.PermissionDenied,
      "TRANSACTION_MISMATCH",
    );
    await expectFailure(h.client.stepUp.verify(request), Code.FailedPrecondition, "TRANSACTION_REQUIRED");
    await h.flushAudit();
    assert.deepEqual(
      await h.db.query("select count(*) as n from audit_events where subject = $1", [request.subject]),
      before,
    );
    // The attempts were not spent: the right transaction still verifies.
    assert.ok((await h.client.stepUp.verify({ ...request, transaction: transfer })).grant?.token);
  });

  it("an unbound grant checked with details is refused: the caller expected a binding", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { secret } = await enrolTotp(h, subject);
    const res = await h.client.stepUp.stepUp({ subject, sessionId, action: "account.view" });
    assert.equal(res.outcome.case, "challenge");
    const verified = await h.client.stepUp.verify({
      challengeId: res.outcome.value.challengeId,
      ...{ subject, sessionId, action: "account.view" },
      proof: { kind: { case: "totpCode", value: h.code(secret) } },
      idempotencyKey: newKey(),
    });
    const token = verified.grant?.token ?? "";
    await expectFailure(
      h.client.stepUp.checkGrant({ token, action: "account.view", transaction: transfer }),
      Code.PermissionDenied,
      "TRANSACTION_MISMATCH",
    );
  });

  it("binds a passkey's WebAuthn challenge to the transaction too", async () => {
    const subject = newSubject();
    const sessionId = newSession();
    const { authenticator } = await enrolPasskey(h.client, subject, paymentsParty);
    const res = await h.client.stepUp.stepUp({ subject, sessionId, action, transaction: transfer });
    assert.equal(res.outcome.case, "challenge");
    const options = JSON.parse(res.outcome.value.passkeyRequestOptionsJson) as { challenge: string };
    const unbound = await passkeyChallenge(h.client, subject, newSession(), "account.view", paymentsParty);
    assert.notEqual(options.challenge, unbound.options.challenge);
    const verified = await verifyPasskey(
      h.client,
      { challengeId: res.outcome.value.challengeId, subject, sessionId, action },
      JSON.stringify(authenticator.assert({ ...paymentsParty, challenge: options.challenge })),
    ).catch((e: unknown) => e);
    // Verify needs the transaction: the passkey helper sends none.
    assert.equal((await failure(Promise.reject(verified))).reason, "TRANSACTION_REQUIRED");
    const withTransaction = await h.client.stepUp.verify({
      challengeId: res.outcome.value.challengeId,
      ...{ subject, sessionId, action },
      proof: {
        kind: {
          case: "passkeyAssertionJson",
          value: JSON.stringify(authenticator.assert({ ...paymentsParty, challenge: options.challenge })),
        },
      },
      idempotencyKey: newKey(),
      transaction: transfer,
    });
    assert.equal(withTransaction.grant?.acr, "aal3");
  });
});
