import { hostname } from "node:os";
import { startTelemetry } from "@stepgate/telemetry";

// The replica's entry point. Telemetry starts first and the service is imported after it, so the
// gRPC, pg and ioredis modules are instrumented when they load.
const replicaId = process.env.STEPGATE_REPLICA_ID || `${hostname()}-${process.pid}`;
process.env.STEPGATE_REPLICA_ID = replicaId;
const telemetry = await startTelemetry({ serviceName: "stepgate", instanceId: replicaId });
const { runReplica } = await import("./replica.ts");
await runReplica(process.env, { afterShutdown: () => telemetry.shutdown() });
