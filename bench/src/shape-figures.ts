// pnpm figures:shape: the server's "shape" figures, for before/after comparisons of a refactor:
// how many server files one successful TOTP Verify runs through, how long the server's files are,
// and how many imports run against the layer order of .dependency-cruiser.cjs (plus the cycles).
// `--static` skips the Verify measurement (it needs this machine's PostgreSQL and Redis).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { codeRevision } from "./code-revision.ts";
import { shapeViolations } from "./shape-violations.ts";
import { measureVerifyFiles } from "./verify-file-count.ts";

const root = join(import.meta.dirname, "../..");
const serverSrc = join(root, "services/stepgate/src");

/** Line counts of services/stepgate/src/**\/*.ts, tests excluded, by path relative to it. */
function serverFileLengths(): Map<string, number> {
  const lengths = new Map<string, number>();
  for (const path of readdirSync(serverSrc, { recursive: true, encoding: "utf8" }).sort()) {
    if (!path.endsWith(".ts") || path.endsWith(".test.ts")) continue;
    const text = readFileSync(join(serverSrc, path), "utf8");
    // As `wc -l` counts, plus a last line without its newline.
    lengths.set(path, text.split("\n").length - (text.endsWith("\n") ? 1 : 0));
  }
  return lengths;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const upper = sorted[mid] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[mid - 1] ?? Number.NaN) + upper) / 2;
}

const staticOnly = process.argv.includes("--static");
const code = codeRevision();
const lengths = [...serverFileLengths().values()];
const shape = await shapeViolations();
const verify = staticOnly
  ? undefined
  : await measureVerifyFiles({
      databaseAdminUrl:
        process.env.STEPGATE_BENCH_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres",
      redisUrl: process.env.STEPGATE_BENCH_REDIS_URL ?? "redis://127.0.0.1:6379",
    });

const moduleCycles = shape.cycles.filter((c) => c.rule === "no-circular");
const folderCycles = shape.cycles.filter((c) => c.rule === "no-folder-cycles");
const rows: [string, string][] = [
  ["server files one successful TOTP Verify passes through", verify ? String(verify.files.length) : "-"],
  ["server source files (services/stepgate/src, no tests)", String(lengths.length)],
  ["median file length (lines)", median(lengths).toFixed(1)],
  ["mean file length (lines)", (lengths.reduce((a, b) => a + b, 0) / lengths.length).toFixed(1)],
  ["imports against the layer order (back-edges)", String(shape.backEdges.length)],
  ["import cycles: modules / folders", `${moduleCycles.length} / ${folderCycles.length}`],
];
const width = Math.max(...rows.map(([label]) => label.length));
const out: string[] = [
  `Stepgate shape figures, ${code.commit.slice(0, 12)}${code.uncommitted.length > 0 ? " + uncommitted changes" : ""}`,
  "",
  ...rows.map(([label, value]) => `${label.padEnd(width)}  ${value.padStart(6)}`),
];
if (verify) {
  out.push("", "Files one Verify ran (functions run):");
  for (const file of verify.files) out.push(`  ${file} (${verify.functionsRun[file]})`);
}
out.push("", "Back-edges (importer → imported, rules):");
for (const e of shape.backEdges)
  out.push(`  ${e.from} → ${e.to}${e.typeOnly ? " [type-only]" : ""}  (${e.rules.join(", ")})`);
out.push("", "Cycles:");
for (const c of shape.cycles) {
  out.push(`  ${c.rule}: ${[...c.members, c.members[0]].join(" → ")}`);
  for (const edge of c.edges) out.push(`      ${edge}`);
}
if (shape.other.length > 0) out.push("", "Other violations:", ...shape.other.map((v) => `  ${v}`));
process.stdout.write(`${out.join("\n")}\n`);
