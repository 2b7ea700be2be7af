// A load generator process, forked by load-workers.ts: it runs the commands it is sent over IPC
// and answers each with its result. Separate processes, so the generators' CPU is not the
// replicas' and one generator's event loop does not limit the load.
import { runClosedLoop } from "./closed-loop.ts";
import { measureOfflineVerify } from "./offline-verify.ts";
import { runOpenLoop } from "./open-loop.ts";
import { createScenarioCalls, type ScenarioCalls } from "./scenario-calls.ts";
import type { FloodSample, PhaseSample, WorkerCommand } from "./worker-messages.ts";
import { serveWorkerCommands } from "./worker-messages.ts";

// Preparation is not measured; enough in flight to be quick, few enough not to time out.
const prepareConcurrency = 32;

let calls: ScenarioCalls | undefined;
let target = "";
let caller = "";

const ready = () => {
  if (calls === undefined) throw new Error("worker not initialised");
  return calls;
};

async function handle(command: WorkerCommand): Promise<unknown> {
  switch (command.type) {
    case "init":
      target = command.target;
      caller = command.caller;
      calls = createScenarioCalls(command);
      return null;
    case "prepare-sessions":
      return ready().prepareSessions(command.count, prepareConcurrency);
    case "prepare-challenges":
      return ready().prepareChallenges(command.count, prepareConcurrency);
    case "run": {
      const next = ready().next(command.scenario);
      const { load } = command;
      return load.kind === "closed"
        ? runClosedLoop(next, load.concurrency, load.durationMs)
        : runOpenLoop(next, load.ratePerSecond, load.durationMs);
    }
    case "flood": {
      const list = ready().next("list-factors");
      // The recovery loop starts the moment the flood's schedule ends, while its last calls finish.
      let recovery: Promise<PhaseSample> | undefined;
      const flood = await runOpenLoop(list, command.ratePerSecond, command.durationMs, {
        maxLagMs: command.maxLagMs,
        onScheduleEnd: () => {
          recovery = runClosedLoop(list, command.concurrency, command.recoveryMs, command.bucketMs);
        },
      });
      return { flood, recovery: await (recovery as Promise<PhaseSample>) } satisfies FloodSample;
    }
    case "flow-users":
      return ready().flowUsers();
    case "grants":
      return ready().grants();
    case "offline":
      return measureOfflineVerify({ target, caller, ...command });
    case "close":
      calls?.close();
      return null;
  }
}

serveWorkerCommands(handle);
