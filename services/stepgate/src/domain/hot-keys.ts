import { createHash } from "node:crypto";

/** A hot-store key: the parts are hashed, so raw subjects and session ids never appear in keys. */
export function hotKey(kind: string, ...parts: string[]): string {
  return `${kind}:${createHash("sha256").update(parts.join("\u0000")).digest("base64url").slice(0, 32)}`;
}
