// The operator CLI against a replica in insecure development mode (`pnpm dev`): the
// `stepgate-operator` header names an operator of the policy, and nothing else gets in.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { followCli, runCli } from "./support/operator-cli.ts";
import { type Harness, startStepgate, testPolicy } from "./support/stepgate.ts";

describe("the operator CLI, in insecure development mode", () => {
  let withOperators: Harness;
  let withoutOperators: Harness;

  before(async () => {
    withOperators = await startStepgate({
      policy: `${testPolicy}
operators:
  dev: { scopes: ["*"] }
  viewer: { scopes: [status] }
`,
    });
    withoutOperators = await startStepgate();
  });
  after(async () => {
    await withOperators?.close();
    await withoutOperators?.close();
  });

  it("runs the commands of the operator the header names, within its scopes", async () => {
    const status = await runCli(["status", "--target", withOperators.target]);
    assert.equal(status.exit, 0, status.stderr);
    assert.match(status.stdout, /SERVING/);
    const tail = await runCli([
      "audit",
      "tail",
      "--target",
      withOperators.target,
      "--kind",
      "admin.",
      "--json",
    ]);
    assert.equal(tail.exit, 0, tail.stderr);
    const events = (tail.json as { events: { type: string; caller: string; detailsJson: string }[] }).events;
    // Its own read is recorded first, with the operator as the header named them.
    const read = events.find((e) => e.type === "admin.audit_read");
    assert.equal(read?.caller, "operator:dev");
    assert.equal(JSON.parse(read?.detailsJson ?? "{}").operator_identity, "stepgate-operator header");
    const viewer = await runCli([
      "subject",
      "unlock",
      "u-1",
      "--target",
      withOperators.target,
      "--operator",
      "viewer",
    ]);
    assert.equal(viewer.exit, 4);
    assert.match(
      viewer.stderr,
      /not allowed to run subjects\.unlock commands \(PermissionDenied OPERATOR_NOT_ALLOWED\)/,
    );
  });

  it("audit tail --follow prints each new event as a JSON line, and ends on Ctrl-C", async () => {
    const target = withOperators.target;
    const following = followCli([
      "audit",
      "tail",
      "--target",
      target,
      "--kind",
      "subject.unlocked",
      "--follow",
      "--json",
    ]);
    // Before its first read or after it, the unlock is printed: in the first page or a later poll.
    const unlocked = await runCli(["subject", "unlock", "u-followed", "--target", target]);
    assert.equal(unlocked.exit, 0, unlocked.stderr);
    const line = await following.lineMatching(/u-followed/);
    const event = JSON.parse(line) as { type: string; subject: string; caller: string };
    assert.deepEqual(
      [event.type, event.subject, event.caller],
      ["subject.unlocked", "u-followed", "operator:dev"],
    );
    assert.equal(await following.interrupt(), 0);
  });

  it("refuses a name the policy does not list, and everyone without an operators section", async () => {
    const stranger = await runCli([
      "factors",
      "list",
      "u-1",
      "--target",
      withOperators.target,
      "--operator",
      "payments",
    ]);
    assert.equal(stranger.exit, 4);
    assert.match(stranger.stderr, /OPERATOR_NOT_ALLOWED/);
    const nobody = await runCli(["factors", "list", "u-1", "--target", withoutOperators.target]);
    assert.equal(nobody.exit, 4);
    assert.match(nobody.stderr, /stepgate-operator header naming an operator of the policy/);
  });
});
