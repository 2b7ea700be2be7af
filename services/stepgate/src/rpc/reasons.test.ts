import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { ErrorReason } from "@stepgate/api";
import { reasonStatus } from "./reasons.ts";

const repoRoot = join(import.meta.dirname, "../../../..");
const neverSent = new Set(["UNSPECIFIED", "IN_PROGRESS"]);
const protoReasons = Object.keys(ErrorReason).filter((r) => !neverSent.has(r));

/** Connect's `PermissionDenied` as gRPC's `PERMISSION_DENIED`. */
const statusName = (code: Code) => Code[code].replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();

function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(".ts") && !f.endsWith(".test.ts"))
    .map((f) => join(dir, f));
}

describe("error reasons", () => {
  it("map every reason the proto defines to one status, and nothing else", () => {
    assert.deepEqual(Object.keys(reasonStatus).sort(), [...protoReasons].sort());
  });

  it("are each produced somewhere in the service or the grant verifier it uses", () => {
    const listing = new Set([join("rpc", "reasons.ts")]);
    const code = [
      ...sources(join(repoRoot, "services/stepgate/src")),
      ...sources(join(repoRoot, "packages/grant/src")),
    ]
      .filter((f) => ![...listing].some((l) => f.endsWith(l)))
      .map((f) => readFileSync(f, "utf8"))
      .join("\n");
    const unused = protoReasons.filter((r) => !code.includes(`"${r}"`));
    assert.deepEqual(unused, [], "reasons defined but never produced");
  });

  it("match the table in docs/errors.md, reason by reason and status by status", () => {
    const table = readFileSync(join(repoRoot, "docs/errors.md"), "utf8");
    const documented = new Map<string, string>();
    for (const line of table.split("\n")) {
      const cells = line.split("|").map((c) => c.trim());
      const names = [...(cells[1] ?? "").matchAll(/`([A-Z_]+)`/g)].map((m) => m[1] ?? "");
      const status = /^[A-Z_]+/.exec(cells[2] ?? "")?.[0];
      if (names.length === 0 || status === undefined || !/^[A-Z_]+$/.test(names[0] ?? "")) continue;
      for (const name of names) documented.set(name, status);
    }
    const expected = new Map(Object.entries(reasonStatus).map(([r, code]) => [r, statusName(code)]));
    assert.deepEqual(new Map([...documented].sort()), new Map([...expected].sort()));
  });
});
