import { execFile } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

const root = join(import.meta.dirname, "../..");
const depcruise = join(root, "node_modules/dependency-cruiser/bin/dependency-cruiser.mjs");

/** The rules of .dependency-cruiser.cjs that forbid an import against the layer order. */
const directionRules = new Set([
  "base-imports-only-base",
  "policy-config-import-only-base",
  "store-imports-only-base-policy-config",
  "use-cases-import-nothing-above",
  "rpc-imports-nothing-above",
  "server-imports-nothing-above",
  "rpc-only-from-server-or-entry-points",
  "server-only-from-entry-points",
]);
const cycleRules = new Set(["no-circular", "no-folder-cycles"]);

interface Violation {
  type?: string;
  from: string;
  to: string;
  rule: { name: string; severity: string };
  dependencyTypes?: string[];
  cycle?: { name: string }[];
}

interface CruiseModule {
  source: string;
  dependencies: { resolved: string; dependencyTypes: string[] }[];
}

/** An import that runs against the layer order, with the rules it breaks. */
export interface BackEdge {
  from: string;
  to: string;
  typeOnly: boolean;
  rules: string[];
}

/** A cycle of modules (`no-circular`) or of folders (`no-folder-cycles`), each listed once. */
export interface Cycle {
  rule: string;
  members: string[];
  /** For a folder cycle: the file imports between consecutive folders that close it. */
  edges: string[];
}

/** What `pnpm check:shape` finds, grouped for the figures. */
export interface ShapeViolations {
  backEdges: BackEdge[];
  cycles: Cycle[];
  /** Violations of the other rules (drivers, store internals, unresolvable, ...) as `rule: from → to`. */
  other: string[];
}

const strip = (path: string) => path.replace(/^services\/stepgate\/src\//, "");

/** Runs dependency-cruiser with the committed configuration, as `pnpm check:shape` does. */
export async function shapeViolations(): Promise<ShapeViolations> {
  // The same sources as `pnpm check:shape` (whose shell expands packages/*/src).
  const packages = readdirSync(join(root, "packages"))
    .map((name) => `packages/${name}/src`)
    .filter((path) => existsSync(join(root, path)));
  const args = [depcruise, "--config", ".dependency-cruiser.cjs", "--output-type", "json"];
  // It exits with the number of errors; the JSON is on stdout either way.
  const stdout = await promisify(execFile)(
    process.execPath,
    [...args, "services/stepgate/src", ...packages.sort()],
    { cwd: root, maxBuffer: 64 * 2 ** 20 },
  )
    .then((r) => r.stdout)
    .catch((error: { stdout?: string }) => {
      if (!error.stdout) throw error;
      return error.stdout;
    });
  const result = JSON.parse(stdout) as { modules: CruiseModule[]; summary: { violations: Violation[] } };

  const backEdges = new Map<string, BackEdge>();
  const cycles = new Map<string, Cycle>();
  const other: string[] = [];
  for (const v of result.summary.violations) {
    if (directionRules.has(v.rule.name)) {
      const key = `${v.from} ${v.to}`;
      const edge = backEdges.get(key) ?? {
        from: strip(v.from),
        to: strip(v.to),
        typeOnly: v.dependencyTypes?.includes("type-only") ?? false,
        rules: [],
      };
      edge.rules.push(v.rule.name);
      backEdges.set(key, edge);
    } else if (cycleRules.has(v.rule.name)) {
      const members = [v.from, ...(v.cycle ?? []).map((c) => c.name)];
      const unique = [...new Set(members)];
      const key = `${v.rule.name} ${[...unique].sort().join(" ")}`;
      if (!cycles.has(key)) cycles.set(key, { rule: v.rule.name, members: unique.map(strip), edges: [] });
    } else {
      other.push(`${v.rule.name}: ${strip(v.from)} → ${strip(v.to)}`);
    }
  }
  for (const cycle of cycles.values()) {
    if (cycle.rule !== "no-folder-cycles") continue;
    const folders = cycle.members;
    folders.forEach((from, i) => {
      const to = folders[(i + 1) % folders.length] ?? from;
      for (const m of result.modules) {
        if (strip(m.source).replace(/\/[^/]+$/, "") !== from) continue;
        for (const d of m.dependencies) {
          if (strip(d.resolved).replace(/\/[^/]+$/, "") === to)
            cycle.edges.push(`${strip(m.source)} → ${strip(d.resolved)}`);
        }
      }
    });
  }
  return { backEdges: [...backEdges.values()], cycles: [...cycles.values()], other };
}
