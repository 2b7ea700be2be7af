import {
  normalizeTransaction,
  type TransactionDetails,
  TransactionError,
  transactionDigest,
  transactionSummary,
} from "@stepgate/grant";
import { assertThat, StepgateError } from "../domain/stepgate-error.ts";

/** A transaction a challenge and its grant are bound to: its digest (the `txn` claim) and the line the user sees. */
export interface BoundTransaction {
  /** base64url SHA-256 of the details' RFC 8785 normal form (@stepgate/grant transaction.ts). */
  digest: string;
  /** E.g. "Pay 10.5 EUR to ACME Ltd". */
  summary: string;
}

/**
 * The transaction of a call to an action that binds its grants. Fails with TRANSACTION_REQUIRED
 * when the call sent none, or TRANSACTION_INVALID (metadata `refusal`) when the details do not
 * normalise; the message names the field, never its value.
 */
export function boundTransaction(details: unknown): BoundTransaction {
  return { digest: digestOf(details), summary: transactionSummary(details) };
}

/** Fails with TRANSACTION_REQUIRED, TRANSACTION_INVALID, or TRANSACTION_MISMATCH when `details` are not the transaction `digest` names. */
export function assertSameTransaction(digest: string, details: unknown): void {
  assertThat(
    digestOf(details) === digest,
    "TRANSACTION_MISMATCH",
    "not the transaction the challenge was issued for",
  );
}

/** The details' digest (the `txn` claim); the refusals of `boundTransaction`. */
function digestOf(details: unknown): string {
  assertThat(
    details !== undefined,
    "TRANSACTION_REQUIRED",
    "this action binds its grants to one transaction: send it",
  );
  return refusingInvalid(() => transactionDigest(details));
}

/**
 * The details as the policy's rule conditions see them: normalised, or undefined when the call sent
 * none. Fails with TRANSACTION_INVALID when they do not normalise: a condition never reads a
 * transaction it could not check.
 */
export function conditionTransaction(details: unknown): TransactionDetails | undefined {
  return details === undefined ? undefined : refusingInvalid(() => normalizeTransaction(details));
}

function refusingInvalid<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    if (!(error instanceof TransactionError)) throw error;
    throw new StepgateError("TRANSACTION_INVALID", error.message, { metadata: { refusal: error.refusal } });
  }
}
