import { randomBytes } from "node:crypto";
import { type DescMessage, ScalarType } from "@bufbuild/protobuf";

// The request field by which a replica recognises a call sent again (proto name).
const keyFieldName = "idempotency_key";

// Per request type: the key field's local (camelCase) name, or null when it has none.
const keyFields = new WeakMap<DescMessage, string | null>();

function keyFieldOf(schema: DescMessage): string | null {
  let local = keyFields.get(schema);
  if (local === undefined) {
    const field = schema.fields.find(
      (f) =>
        f.name === keyFieldName && f.fieldKind === "scalar" && f.scalar === ScalarType.STRING && !f.oneof,
    );
    local = field?.localName ?? null;
    keyFields.set(schema, local);
  }
  return local;
}

/** A fresh idempotency key: 18 random bytes as base64url, 24 printable ASCII characters. */
export function newIdempotencyKey(): string {
  return randomBytes(18).toString("base64url");
}

/**
 * `input` with a fresh idempotency key when its request type (`schema`) has a string field
 * `idempotency_key` that the caller left empty; `input` itself otherwise. A key the caller set is
 * kept. Called once per logical call, before its first attempt, so every retry of the channel and
 * every resend carries the same key. The caller's object is never changed: the key goes on a copy.
 */
export function withIdempotencyKey<T>(schema: DescMessage, input: T): T {
  const field = keyFieldOf(schema);
  if (field === null) return input;
  const current = (input as Record<string, unknown> | undefined)?.[field];
  if (typeof current === "string" && current !== "") return input;
  return { ...input, [field]: newIdempotencyKey() };
}
