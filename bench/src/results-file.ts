import { writeFileSync } from "node:fs";

/** Writes `result` to `file` as indented JSON, NaN and infinities as null (JSON has neither). */
export function writeResultsJson(file: string, result: unknown): void {
  const finite = (_key: string, value: unknown) =>
    typeof value === "number" && !Number.isFinite(value) ? null : value;
  writeFileSync(file, `${JSON.stringify(result, finite, 2)}\n`);
}
