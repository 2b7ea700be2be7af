import { UsageError } from "./exit-codes.ts";

// The same rules the service declares in its protos, checked first so bad input costs no call.
// C0 controls and DEL, by code point (a regex literal of control characters reads as a mistake).
const hasControlCharacter = (text: string) =>
  [...text].some((c) => (c.codePointAt(0) ?? 0) < 0x20 || c.codePointAt(0) === 0x7f);
const factorIdPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A subject or session id: 1 to 256 bytes of text without control characters. */
export function checkedText(what: string, value: string | undefined): string {
  if (value === undefined || value === "") throw new UsageError(`${what} is required`);
  if (Buffer.byteLength(value) > 256) throw new UsageError(`${what} must be at most 256 bytes`);
  if (hasControlCharacter(value)) throw new UsageError(`${what} must not contain control characters`);
  return value;
}

/** A factor id as Stepgate hands them out: a lowercase UUID. */
export function checkedFactorId(value: string | undefined): string {
  if (value === undefined || value === "") throw new UsageError("factor id is required");
  if (!factorIdPattern.test(value)) throw new UsageError(`factor id is not a factor id (a lowercase UUID)`);
  return value;
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** A duration such as "500ms", "10s", "10m", "2h" or "1d", in ms; `what` names the option. */
export function durationMs(what: string, text: string): number {
  const match = /^(\d{1,9})(ms|s|m|h|d)$/.exec(text);
  if (!match) throw new UsageError(`${what} must be a duration such as 10s, 10m or 2h`);
  return Number(match[1]) * (units[match[2] as string] as number);
}

/** `--since`: a duration back from now ("10m") or an ISO 8601 time ("2026-12-01T10:00:00Z"). */
export function sinceTime(text: string, now: number): Date {
  if (/^\d+(ms|s|m|h|d)$/.test(text)) return new Date(now - durationMs("--since", text));
  const at = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:\d{2})?)?$/.test(text) ? Date.parse(text) : Number.NaN;
  if (Number.isNaN(at)) throw new UsageError("--since must be a duration back from now (10m) or an ISO time");
  return new Date(at);
}

/** An integer option within [min, max]. */
export function integer(what: string, text: string, min: number, max: number): number {
  const n = /^\d{1,9}$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${what} must be a whole number from ${min} to ${max}`);
  return n;
}
