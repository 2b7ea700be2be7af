// What the failover tests of test/ha share: a flow load that keeps its failed calls, and state
// closed with seeded subjects before the fault.
import type { StepgateClient } from "@stepgate/client";
import { type FlowCall, type FlowLoad, startFlowLoad } from "@stepgate/testkit/flow-load";
import type { FlowSubject } from "@stepgate/testkit/seed-subjects";
import { codeForStep } from "@stepgate/testkit/totp-code";
import { type ClosedState, closeState } from "./closed-state.ts";

/** A flow load at `ratePerSecond` for `durationMs` ms (open loop) whose failed calls are kept. */
export function flowLoadKeepingFailures(
  client: StepgateClient,
  subjects: FlowSubject[],
  load: { ratePerSecond: number; durationMs: number },
): { flows: FlowLoad; failures: FlowCall[] } {
  const failures: FlowCall[] = [];
  const flows = startFlowLoad({
    client,
    subjects,
    ratePerSecond: load.ratePerSecond,
    durationMs: load.durationMs,
    onCall: (call) => {
      if (!call.ok) failures.push(call);
    },
  });
  return { flows, failures };
}

/** `closeState` with three subjects of `seedSubjects` (spender, ender, locked, in that order), each
 * verifying with the code of the step after its confirming one. */
export function closeStateWith(client: StepgateClient, closing: FlowSubject[]): Promise<ClosedState> {
  const code = (subject: string) => {
    const s = closing.find((c) => c.subject === subject) as FlowSubject;
    return codeForStep(s.secret, s.lastStep + 1);
  };
  const [spender, ender, locked] = closing.map((s) => s.subject) as [string, string, string];
  return closeState(client, { spender, ender, locked, code });
}
