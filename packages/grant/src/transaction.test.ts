import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  canonicalTransaction,
  normalizeTransaction,
  type TransactionDetails,
  TransactionError,
  transactionDigest,
  transactionSummary,
} from "./transaction.ts";

const base: TransactionDetails = {
  amount: "10.50",
  currency: "EUR",
  payee: "ACME Ltd",
  resource: "invoice-42",
};

/** The refusal `details` get; fails the test if they are accepted. */
function refusalOf(details: unknown): string {
  try {
    normalizeTransaction(details);
  } catch (error) {
    assert.ok(error instanceof TransactionError, String(error));
    return error.refusal;
  }
  assert.fail("expected the details to be refused");
}

describe("transaction details (canonical form, RFC 8785, and digest)", () => {
  it("writes one canonical JSON (JCS: sorted keys, no spaces) of the normal form", () => {
    assert.equal(
      canonicalTransaction(base),
      '{"amount":"10.5","currency":"EUR","payee":"ACME Ltd","resource":"invoice-42"}',
    );
    assert.equal(transactionSummary(base), "Pay 10.5 EUR to ACME Ltd (invoice-42)");
  });

  it("gives one digest to one amount however it is written, and to one payee in NFC or NFD", () => {
    const digest = transactionDigest(base);
    for (const amount of ["10.5", "010.50", "10.500000"])
      assert.equal(transactionDigest({ ...base, amount }), digest);
    assert.equal(transactionDigest({ ...base, payee: "  ACME   Ltd " }), digest);
    const nfc = transactionDigest({ ...base, payee: "Müller GmbH" });
    assert.equal(transactionDigest({ ...base, payee: "Mu\u0308ller GmbH" }), nfc);
    assert.equal(normalizeTransaction({ ...base, amount: "0.00" }).amount, "0");
    assert.equal(normalizeTransaction({ ...base, resource: "" }).resource, undefined);
  });

  it("refuses amounts that are not decimal strings, or too large to keep exact", () => {
    for (const amount of ["1e3", "-5", "+5", "1,000.00", " 10", "10.", ".5", "0x10", "", "١٠"])
      assert.equal(refusalOf({ ...base, amount }), "amount_not_decimal", amount);
    // A float is refused: 0.1 + 0.2 is already not 0.3.
    assert.equal(refusalOf({ ...base, amount: 10.5 }), "amount_not_decimal");
    assert.equal(refusalOf({ ...base, amount: "1".repeat(19) }), "amount_too_large");
    assert.equal(refusalOf({ ...base, amount: "1.1234567" }), "amount_too_large");
  });

  it("refuses currencies that are not ISO 4217 codes", () => {
    for (const currency of ["eur", "EURO", "EU", "", "€", 978])
      assert.equal(refusalOf({ ...base, currency }), "currency_not_iso4217");
  });

  it("refuses confusable payees: mixed scripts, control and format characters", () => {
    // A Cyrillic "а" (U+0430) in a Latin name.
    assert.equal(refusalOf({ ...base, payee: "P\u0430yPal" }), "payee_mixed_scripts");
    assert.equal(refusalOf({ ...base, payee: "ACME\u202Eevil" }), "payee_control_characters");
    assert.equal(refusalOf({ ...base, payee: "ACME\u200BLtd" }), "payee_control_characters");
    assert.equal(refusalOf({ ...base, payee: "ACME\nLtd" }), "payee_control_characters");
    assert.equal(refusalOf({ ...base, payee: "   " }), "payee_empty");
    assert.equal(refusalOf({ ...base, payee: "x".repeat(129) }), "payee_too_long");
    // One script each, or a CJK mix a name is written in.
    for (const payee of [
      "Müller GmbH",
      "Αθήνα Α.Ε.",
      "ООО Ромашка",
      "山田 太郎",
      "ヤマダ 山田",
      "김 金",
      "O'Brien & Sons 2",
    ])
      assert.equal(normalizeTransaction({ ...base, payee }).payee, payee);
  });

  it("refuses what the user could not have seen: unknown fields, nested values, not an object", () => {
    assert.equal(refusalOf({ ...base, note: "x" }), "unknown_field");
    assert.equal(refusalOf({ ...base, resource: { id: 1 } }), "resource_not_printable");
    assert.equal(refusalOf({ ...base, resource: "é" }), "resource_not_printable");
    for (const input of [null, [], "details", 5]) assert.equal(refusalOf(input), "not_an_object");
  });

  const amounts = fc
    .tuple(
      fc.bigInt({ min: 0n, max: 10n ** 18n - 1n }),
      fc.option(fc.stringMatching(/^\d{1,6}$/), { nil: undefined }),
    )
    .map(([whole, fraction]) => (fraction === undefined ? `${whole}` : `${whole}.${fraction}`));
  const payees = fc.stringMatching(/^[A-Za-z][A-Za-z0-9 .&'-]{0,40}$/);
  const details = fc.record(
    {
      amount: amounts,
      currency: fc.stringMatching(/^[A-Z]{3}$/),
      payee: payees,
      resource: fc.stringMatching(/^[ -~]{0,20}$/),
    },
    { requiredKeys: ["amount", "currency", "payee"] },
  );

  it("property: the digest changes with every field's normal form, and only with it", () => {
    fc.assert(
      fc.property(details, details, (a, b) => {
        const same = canonicalTransaction(a) === canonicalTransaction(b);
        assert.equal(transactionDigest(a) === transactionDigest(b), same);
        assert.equal(transactionDigest(normalizeTransaction(a)), transactionDigest(a));
      }),
      { numRuns: 2000 },
    );
  });

  it("property: any input is normalised or refused with a TransactionError, never anything else", () => {
    fc.assert(
      fc.property(
        fc.anything(),
        fc.record({ amount: fc.anything(), currency: fc.anything(), payee: fc.string() }),
        (x, y) => {
          for (const input of [x, y]) {
            try {
              normalizeTransaction(input);
            } catch (error) {
              assert.ok(error instanceof TransactionError, String(error));
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
