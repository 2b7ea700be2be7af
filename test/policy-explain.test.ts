// `pnpm policy:explain`: the decision and the rule for a request, from the policy file alone, as a
// child process; bad requests and policies exit 2 with one line.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { writePolicy } from "./support/stepgate.ts";

const tool = join(import.meta.dirname, "../services/stepgate/src/tools/policy-explain.ts");
const examplePolicy = join(import.meta.dirname, "../services/stepgate/policy/example.yaml");

function explain(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [tool, "--policy", examplePolicy, ...args],
      { timeout: 20_000 },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code) : 0, stdout, stderr }),
    );
  });
}

const transfer = { amount: "120.00", currency: "EUR", payee: "ACME Ltd" };

describe("policy explain", () => {
  it("names the rule that applies and what it requires, and each rule's result", async () => {
    const out = await explain(JSON.stringify({ action: "payments.transfer", transaction: transfer }));
    assert.equal(out.code, 0, out.stderr);
    assert.match(
      out.stdout,
      /^payments\.transfer: rule new_payee \(matched\)\n {2}requires aal2, max_age 0 s/,
    );
    assert.match(out.stdout, /large_amount +false/);
    assert.match(out.stdout, /-> new_payee +true/);
  });

  it("answers JSON: a known payee leaves the action's own requirement; facts unavailable fail towards the stricter", async () => {
    const seen = await explain(
      "--json",
      JSON.stringify({ action: "payments.transfer", transaction: transfer, facts: { payee_seen: true } }),
    );
    assert.deepEqual(JSON.parse(seen.stdout).rule, null);
    assert.equal(JSON.parse(seen.stdout).requirement.max_age, 300);
    const down = await explain(
      "--json",
      JSON.stringify({ action: "payments.transfer", transaction: transfer, facts: "unavailable" }),
    );
    const decision = JSON.parse(down.stdout);
    assert.deepEqual([decision.rule, decision.reason], ["new_payee", "assumed"]);
    assert.equal(decision.rules[1].result, "undecided");
  });

  it("exits 2 with one line for a bad request, an unknown action, bad details or a bad policy", async () => {
    const cases: [string[], RegExp][] = [
      [["not json"], /the request is not JSON/],
      [["[]"], /must be a JSON object/],
      [[JSON.stringify({ action: "" })], /action: a policy action name is required/],
      [[JSON.stringify({ action: "nope" })], /no action "nope"/],
      [[JSON.stringify({ action: "payments.transfer", user: "x" })], /unknown field "user"/],
      [
        [JSON.stringify({ action: "payments.transfer", transaction: { ...transfer, amount: "1e3" } })],
        /transaction: .*amount/,
      ],
      [
        [JSON.stringify({ action: "payments.transfer", facts: { payee_seen: "yes" } })],
        /facts\.payee_seen: true or false/,
      ],
    ];
    for (const [args, message] of cases) {
      const out = await explain(...args);
      assert.equal(out.code, 2, args.join(" "));
      assert.match(out.stderr, message);
      assert.equal(out.stderr.trim().split("\n").length, 1);
      assert.equal(out.stdout, "");
    }
    const broken = writePolicy("levels: [aal1]\n");
    const out = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(process.execPath, [tool, "--policy", broken, '{"action":"x"}'], (e, _o, stderr) =>
        resolve({ code: e ? Number(e.code) : 0, stderr }),
      ),
    );
    assert.equal(out.code, 2);
  });
});
