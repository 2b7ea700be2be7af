import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import fc from "fast-check";
import type { GrantClaims } from "./grant-claims.ts";
import { GrantError } from "./grant-error.ts";
import { createGrantSigner } from "./grant-signer.ts";
import { createGrantVerifier, type GrantExpectations } from "./grant-verifier.ts";
import { publicJwk } from "./jwk.ts";
import { canonicalTransaction, type TransactionDetails, transactionDigest } from "./transaction.ts";

const t0 = 1_900_000_000;
const issuer = "https://stepgate.example";
const transfer: TransactionDetails = { amount: "10.50", currency: "EUR", payee: "ACME Ltd" };
const expect: GrantExpectations = { audience: "payments", action: "payments.transfer" };

/** A signer and a verifier sharing one key, at a fixed time. */
function setup() {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const verifier = createGrantVerifier({
    keys: async () => [publicJwk("k1", publicKey)],
    issuer,
    now: () => t0 * 1000,
  });
  const signer = createGrantSigner({ kid: "k1", privateKey });
  const token = (extra: Partial<GrantClaims> | Record<string, unknown> = {}) =>
    signer.sign({
      iss: issuer,
      sub: "alice",
      sid: "s-1",
      aud: "payments",
      action: "payments.transfer",
      acr: "aal2",
      amr: ["hwk", "user", "mfa"],
      auth_time: t0 - 10,
      iat: t0,
      exp: t0 + 60,
      jti: "grant-1",
      ...extra,
    } as GrantClaims);
  return { verifier, token };
}

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof GrantError, String(error));
    return error.reason;
  }
  assert.fail("expected the grant to be refused");
}

describe("grants bound to a transaction, checked offline", () => {
  it("passes a bound grant for its transaction, however the same details are written", async () => {
    const { verifier, token } = setup();
    const bound = token({ txn: transactionDigest(transfer) });
    const claims = await verifier.verify(bound, { ...expect, transaction: { ...transfer, amount: "10.5" } });
    assert.equal(claims.txn, transactionDigest(transfer));
  });

  it("refuses it for another amount, currency, payee or resource, without details, or with bad ones", async () => {
    const { verifier, token } = setup();
    const bound = token({ txn: transactionDigest(transfer) });
    for (const other of [
      { ...transfer, amount: "10.51" },
      { ...transfer, currency: "USD" },
      { ...transfer, payee: "ACME Ltd." },
      { ...transfer, resource: "invoice-1" },
    ]) {
      assert.equal(
        await refusal(verifier.verify(bound, { ...expect, transaction: other })),
        "GRANT_TRANSACTION_MISMATCH",
      );
    }
    assert.equal(await refusal(verifier.verify(bound, expect)), "GRANT_TRANSACTION_MISMATCH");
    assert.equal(
      await refusal(verifier.verify(bound, { ...expect, transaction: { ...transfer, amount: 10.5 } })),
      "GRANT_TRANSACTION_MISMATCH",
    );
  });

  it("refuses an unbound grant checked as bound, and a binding that is not a digest", async () => {
    const { verifier, token } = setup();
    assert.equal(
      await refusal(verifier.verify(token(), { ...expect, transaction: transfer })),
      "GRANT_TRANSACTION_MISMATCH",
    );
    for (const txn of ["", 5, true, ["x"]])
      assert.equal(await refusal(verifier.verify(token({ txn }), expect)), "GRANT_INVALID");
    // An unbound grant without details passes as before.
    assert.equal((await verifier.verify(token(), expect)).txn, undefined);
  });

  const details = fc.record({
    amount: fc.stringMatching(/^\d{1,6}(\.\d{1,3})?$/),
    currency: fc.constantFrom("EUR", "USD", "CHF"),
    payee: fc.stringMatching(/^[A-Za-z][A-Za-z .-]{0,12}$/),
  });

  it("property: a grant bound to one transaction never passes for another", async () => {
    const { verifier, token } = setup();
    await fc.assert(
      fc.asyncProperty(details, details, async (approved, executed) => {
        const bound = token({ txn: transactionDigest(approved), jti: `g-${canonicalTransaction(approved)}` });
        const same = canonicalTransaction(approved) === canonicalTransaction(executed);
        const passed = await verifier.verify(bound, { ...expect, transaction: executed }).then(
          () => true,
          () => false,
        );
        assert.equal(passed, same);
      }),
      { numRuns: 500 },
    );
  });
});
