// A passkey load generator process, forked by passkey-verify.ts through load-workers.ts: it enrols
// software passkeys, prepares StepUp challenges with their assertions, and drives passkey Verify
// in the closed and open loops the other scenarios use, answering each IPC command as
// load-worker.ts does.
import { runClosedLoop } from "./closed-loop.ts";
import { runOpenLoop } from "./open-loop.ts";
import { createPasskeyCalls, type PasskeyCalls, type PasskeyWorkerCommand } from "./passkey-calls.ts";
import { serveWorkerCommands } from "./worker-messages.ts";

// Preparation is not measured; enough in flight to be quick, few enough not to be shed (an
// enrolment costs the replica more than the StepUp load-worker.ts prepares 32 at a time).
const prepareConcurrency = 16;

let calls: PasskeyCalls | undefined;

const ready = () => {
  if (calls === undefined) throw new Error("passkey worker not initialised");
  return calls;
};

async function handle(command: PasskeyWorkerCommand): Promise<unknown> {
  switch (command.type) {
    case "passkey-init":
      calls = createPasskeyCalls(command);
      return null;
    case "enrol-passkeys":
      return ready().enrol(command.algorithm, command.subjects, prepareConcurrency);
    case "select":
      ready().select(command.algorithm);
      return null;
    case "prepare-challenges":
      return ready().prepare(command.count, prepareConcurrency);
    case "run": {
      if (command.scenario !== "verify") throw new Error(`passkey worker: no scenario ${command.scenario}`);
      const { load } = command;
      const next = ready().verify;
      return load.kind === "closed"
        ? runClosedLoop(next, load.concurrency, load.durationMs)
        : runOpenLoop(next, load.ratePerSecond, load.durationMs);
    }
    case "close":
      calls?.close();
      return null;
    default:
      throw new Error(`passkey worker: no command ${command.type}`);
  }
}

serveWorkerCommands(handle);
