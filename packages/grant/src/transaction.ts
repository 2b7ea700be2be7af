import { createHash } from "node:crypto";
import canonicalize from "canonicalize";

/**
 * What a user approves when a grant is bound to one transaction (PSD2 RTS Article 5, "dynamic
 * linking"): the amount and currency, the payee and, optionally, the resource acted on. Every field
 * is text: an amount is a decimal string, never a float, so no digit is lost on the way.
 */
export interface TransactionDetails {
  /** A decimal string: digits, at most one point, e.g. "10.50"; no sign, exponent or grouping. */
  amount: string;
  /** ISO 4217 alphabetic code, e.g. "EUR". */
  currency: string;
  /** Who receives it, as the user sees it (1 to 128 characters of one script, NFC). */
  payee: string;
  /** What is acted on, e.g. an account or invoice id (0 to 256 bytes, printable ASCII). */
  resource?: string;
}

/** Why details were refused; each names the field. */
export type TransactionRefusal =
  | "amount_not_decimal"
  | "amount_too_large"
  | "currency_not_iso4217"
  | "payee_empty"
  | "payee_too_long"
  | "payee_control_characters"
  | "payee_mixed_scripts"
  | "resource_not_printable"
  | "unknown_field"
  | "not_an_object";

/** Details refused before anything is computed from them; the message names the field, never its value. */
export class TransactionError extends Error {
  readonly refusal: TransactionRefusal;

  constructor(refusal: TransactionRefusal) {
    super(`transaction details refused: ${refusal.replaceAll("_", " ")}`);
    this.name = "TransactionError";
    this.refusal = refusal;
  }
}

// 18 integer digits and 6 decimals hold every ISO 4217 amount, in any minor unit, exactly.
const decimal = /^(\d{1,18})(?:\.(\d{1,6}))?$/;
const iso4217 = /^[A-Z]{3}$/;
const printableAscii = /^[\x20-\x7e]{0,256}$/;
const controls = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
const maxPayeeCharacters = 128;
const fields = new Set(["amount", "currency", "payee", "resource"]);

// The scripts a payee's letters may come from; a name must keep to one (UTS #39 "single script").
// Common and Inherited characters (digits, punctuation, combining marks) go with any script.
const scripts = [
  "Latin",
  "Cyrillic",
  "Greek",
  "Armenian",
  "Hebrew",
  "Arabic",
  "Devanagari",
  "Thai",
  "Hangul",
  "Hiragana",
  "Katakana",
  "Han",
].map((name) => ({ name, pattern: new RegExp(`\\p{Script=${name}}`, "u") }));

/** The script of one letter, or undefined for Common, Inherited and scripts not listed (refused). */
const scriptOf = (character: string) => scripts.find((s) => s.pattern.test(character))?.name;

/** Japanese mixes Han, Hiragana and Katakana; Korean mixes Hangul and Han: each counts as one script. */
const scriptSets = [new Set(["Han", "Hiragana", "Katakana"]), new Set(["Hangul", "Han"])];

/**
 * The details in their one normal form, or a TransactionError:
 * - the amount without leading zeros or trailing fractional zeros ("010.50" and "10.5" are one amount);
 * - the payee in Unicode NFC with its spaces collapsed, refused if it holds control or format
 *   characters (e.g. a right-to-left override) or letters of two scripts (a Cyrillic "а" in a Latin
 *   name: a confusable), after UTS #39's single-script rule;
 * - the currency and the resource as they are, checked.
 * Unknown fields are refused: what the user did not see must not be signed.
 */
export function normalizeTransaction(input: unknown): TransactionDetails {
  if (typeof input !== "object" || input === null || Array.isArray(input))
    throw new TransactionError("not_an_object");
  const record = input as Record<string, unknown>;
  for (const key of Object.keys(record)) if (!fields.has(key)) throw new TransactionError("unknown_field");
  const details: TransactionDetails = {
    amount: normalAmount(record.amount),
    currency: normalCurrency(record.currency),
    payee: normalPayee(record.payee),
  };
  const resource = record.resource;
  if (resource !== undefined && resource !== "") {
    if (typeof resource !== "string" || !printableAscii.test(resource))
      throw new TransactionError("resource_not_printable");
    details.resource = resource;
  }
  return details;
}

function normalAmount(amount: unknown): string {
  if (typeof amount !== "string") throw new TransactionError("amount_not_decimal");
  const match = decimal.exec(amount);
  if (!match)
    throw new TransactionError(/^\d+(\.\d+)?$/.test(amount) ? "amount_too_large" : "amount_not_decimal");
  const whole = (match[1] ?? "0").replace(/^0+(?=\d)/, "");
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  return fraction === "" ? whole : `${whole}.${fraction}`;
}

function normalCurrency(currency: unknown): string {
  if (typeof currency !== "string" || !iso4217.test(currency))
    throw new TransactionError("currency_not_iso4217");
  return currency;
}

function normalPayee(payee: unknown): string {
  if (typeof payee !== "string") throw new TransactionError("payee_empty");
  if (controls.test(payee)) throw new TransactionError("payee_control_characters");
  const normal = payee.normalize("NFC").replace(/\s+/gu, " ").trim();
  if (normal === "") throw new TransactionError("payee_empty");
  if ([...normal].length > maxPayeeCharacters) throw new TransactionError("payee_too_long");
  if (!singleScript(normal)) throw new TransactionError("payee_mixed_scripts");
  return normal;
}

/** True when every letter of `text` is of one script (or of one of the CJK sets that mix by nature). */
function singleScript(text: string): boolean {
  const seen = new Set<string>();
  for (const character of text) {
    if (!/\p{L}/u.test(character)) continue;
    const script = scriptOf(character);
    if (script === undefined) return false;
    seen.add(script);
  }
  if (seen.size <= 1) return true;
  return scriptSets.some((set) => [...seen].every((s) => set.has(s)));
}

/** The normal form as RFC 8785 JSON (JCS): the bytes the digest is taken over. */
export function canonicalTransaction(details: TransactionDetails): string {
  return canonicalize(normalizeTransaction(details)) as string;
}

/**
 * The digest a bound grant carries (`txn` claim): base64url SHA-256 of the canonical form, with a
 * version prefix so another canonicalisation could follow. Throws a TransactionError for details
 * that do not normalise.
 */
export function transactionDigest(details: unknown): string {
  const canonical = canonicalize(normalizeTransaction(details)) as string;
  return createHash("sha256").update(`stepgate-txn-v1:${canonical}`).digest("base64url");
}

/** The line a caller's page shows the user and a passkey challenge commits to, e.g. "Pay 10.5 EUR to ACME Ltd". */
export function transactionSummary(details: unknown): string {
  const d = normalizeTransaction(details);
  return `Pay ${d.amount} ${d.currency} to ${d.payee}${d.resource ? ` (${d.resource})` : ""}`;
}
