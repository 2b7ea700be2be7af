// PostgreSQL failing under a steady StepUp -> Verify -> CheckGrant load through @stepgate/client, on
// three replica processes that each reach PostgreSQL and Redis through proxies of their own
// (@stepgate/testkit/degraded-lab): stopped, blackholed for all, blackholed for one replica, and a
// replica SIGKILLed and started again during the outage. Short runs of `pnpm chaos`'s scenarios;
// they assert the goals (docs/replicas-and-store-failures.md, "When a store fails"), never a latency, and print their figures.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { hotKeys } from "@stepgate/server/store/hot-keys";
import { type DegradedLab, startDegradedLab } from "@stepgate/testkit/degraded-lab";
import { failuresKey } from "@stepgate/testkit/degraded-lockouts";
import { type FlowSubject, seedSubjects } from "@stepgate/testkit/seed-subjects";
import { assertGoals, runShort, subjectsForFourRuns } from "../support/degraded.ts";

describe("PostgreSQL failing under load, three replicas", () => {
  let lab: DegradedLab;
  let subjects: FlowSubject[];
  before(async () => {
    lab = await startDegradedLab();
    // Enrolled through the API: ConfirmTotp puts each subject's factors in the Redis cache.
    subjects = await seedSubjects(lab.client, subjectsForFourRuns);
  });
  after(async () => {
    await lab?.destroy();
  });

  it("reads the subjects' failure counts under the server's own key", () => {
    for (const subject of ["alice", subjects[0]?.subject ?? "load-x"]) {
      assert.equal(failuresKey(subject), hotKeys.failures(subject));
    }
  });

  it("PostgreSQL down: at least 99% of StepUp and Verify calls succeed, from the factor cache", async () => {
    const { goals } = await runShort(lab, subjects, "postgres-down");
    assertGoals(goals);
  });

  it("PostgreSQL blackholed: calls keep succeeding once it is detected", async () => {
    const { goals } = await runShort(lab, subjects, "postgres-blackholed");
    assertGoals(goals);
  });

  it("one replica alone loses PostgreSQL: no flow fails", async () => {
    const { goals } = await runShort(lab, subjects, "one-replica-loses-postgres");
    assertGoals(goals);
  });

  it("a replica SIGKILLed during the PostgreSQL outage: no audit event lost or stored twice", async () => {
    const { goals } = await runShort(lab, subjects, "replica-killed-during-postgres-outage", true);
    assertGoals(goals);
  });
});
