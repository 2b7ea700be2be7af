import { randomBytes, randomUUID } from "node:crypto";

/** An unguessable opaque id (128 random bits, base64url). */
export function randomToken(bytes = 16): string {
  return randomBytes(bytes).toString("base64url");
}

/** A row id. */
export function newId(): string {
  return randomUUID();
}
