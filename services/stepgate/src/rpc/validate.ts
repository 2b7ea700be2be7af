import { Code, ConnectError } from "@connectrpc/connect";
import { BadRequestSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";

interface Violation {
  field: string;
  description: string;
}

/** True if the string holds a C0 control character or DEL, which no Stepgate field needs. */
function hasControlCharacter(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

/** Collects field violations; `done()` throws INVALID_ARGUMENT with a BadRequest listing them all. */
export class Fields {
  readonly #violations: Violation[] = [];

  /** A required string of 1..max UTF-8 bytes without control characters. */
  text(field: string, value: string, max = 256): this {
    if (value === "") return this.add(field, "is required");
    if (Buffer.byteLength(value) > max) return this.add(field, `must be at most ${max} bytes`);
    if (hasControlCharacter(value)) return this.add(field, "must not contain control characters");
    return this;
  }

  /** An optional string: empty passes, otherwise as `text`. */
  optionalText(field: string, value: string, max = 256): this {
    return value === "" ? this : this.text(field, value, max);
  }

  pattern(field: string, value: string, pattern: RegExp, description: string): this {
    if (value === "") return this.add(field, "is required");
    return pattern.test(value) ? this : this.add(field, description);
  }

  /** An idempotency key: 8 to 128 printable ASCII characters; with `optional`, empty passes too. */
  idempotencyKey(field: string, value: string, optional = false): this {
    if (optional && value === "") return this;
    return this.pattern(field, value, idempotencyKeyPattern, "must be 8 to 128 printable ASCII characters");
  }

  check(condition: boolean, field: string, description: string): this {
    return condition ? this : this.add(field, description);
  }

  add(field: string, description: string): this {
    this.#violations.push({ field, description });
    return this;
  }

  done(): void {
    if (this.#violations.length === 0) return;
    const summary = this.#violations.map((v) => `${v.field} ${v.description}`).join("; ");
    throw new ConnectError(`invalid request: ${summary}`, Code.InvalidArgument, undefined, [
      { desc: BadRequestSchema, value: { fieldViolations: this.#violations } },
    ]);
  }
}

export const fields = () => new Fields();

const idempotencyKeyPattern = /^[\x21-\x7e]{8,128}$/;

/** Opaque ids Stepgate hands out (challenge ids: base64url; factor ids: UUIDs). */
export const challengeIdPattern = /^[A-Za-z0-9_-]{16,64}$/;
export const uuidPattern = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
