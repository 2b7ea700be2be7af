// Redis failing, and both stores at once, under a steady StepUp -> Verify -> CheckGrant load through
// @stepgate/client, on three replica processes that each reach PostgreSQL and Redis through proxies
// of their own (@stepgate/testkit/degraded-lab): Redis stopped, restarted empty, blackholed; both
// stores stopped. Short runs of `pnpm chaos`'s scenarios; they assert the goals (docs/replicas-and-store-failures.md, "When a store
// fails"), never a latency, and print their figures.
import { after, before, describe, it } from "node:test";
import { type DegradedLab, startDegradedLab } from "@stepgate/testkit/degraded-lab";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { assertGoals, runShort, subjectsForFourRuns } from "../support/degraded.ts";

describe("Redis failing, and both stores, under load, three replicas", () => {
  let lab: DegradedLab;
  let subjects: FlowSubject[];
  before(async () => {
    lab = await startDegradedLab();
    subjects = await seedSubjects(lab.client, subjectsForFourRuns);
  });
  after(async () => {
    await lab?.destroy();
  });

  // The hot state moves to PostgreSQL and back: a challenge issued on Redis is not found on
  // PostgreSQL after a move, so calls started within 2 s of the fault's start or end do not count.
  it("Redis down: at least 99% of StepUp and Verify calls succeed after detection", async () => {
    const { goals } = await runShort(lab, subjects, "redis-down");
    assertGoals(goals);
  });

  it("Redis restarted empty: at least 99% of StepUp and Verify calls succeed after detection", async () => {
    const { goals } = await runShort(lab, subjects, "redis-restarted-empty");
    assertGoals(goals);
  });

  it("Redis blackholed: calls keep succeeding once it is detected", async () => {
    const { goals } = await runShort(lab, subjects, "redis-blackholed");
    assertGoals(goals);
  });

  it("both down: every call fails UNAVAILABLE, never a grant; offline verifyGrant still works", async () => {
    const { goals } = await runShort(lab, subjects, "both-down");
    assertGoals(goals);
  });
});
