import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log/logger.ts";
import type { Markers } from "../store/markers.ts";
import { faultHeader } from "./fault-injection.ts";

/** The `stepgate-fault` value that holds a successful unary call's status back. */
export const holdStatusFault = "hold-status";
/** Names the one call the fault fires for, once across the fleet (required with `hold-status`). */
export const faultKeyHeader = "stepgate-fault-key";
/** Optional: the id of the only replica the fault fires on (`STEPGATE_REPLICA_ID`). */
export const faultReplicaHeader = "stepgate-fault-replica";
/** The log line written once a status is held: the headers and the message have been written. */
export const statusHeldMessage = "fault: status held";

/** What `holdStatusInterceptor` needs. */
export interface HoldStatusOptions {
  replicaId: string;
  markers: Markers;
  logger: Logger;
  /** How long a held status waits before it is sent after all, in ms. Default 10000. */
  holdMs?: number;
}

/**
 * Test-only (installed with STEPGATE_FAULT_INJECTION=1): a grpc-js server interceptor that, for a
 * call with `stepgate-fault: hold-status`, sends the response headers and message as usual and then
 * holds the OK status back for `holdMs`, after logging `statusHeldMessage` with the rpc and key. A
 * test can SIGKILL the replica then, in the window where a client has committed the call and has
 * no status: the call is lost with its replica. It fires once per `stepgate-fault-key` across the
 * fleet (Redis marker), so the client's resend of the same call, on any replica, goes through.
 * grpc-js's unary glue sends the status only once the message was flushed to the socket.
 */
export function holdStatusInterceptor(options: HoldStatusOptions): grpc.ServerInterceptor {
  return (method, call) => {
    if (method.requestStream || method.responseStream) return new grpc.ServerInterceptingCall(call);
    let key: string | undefined;
    const listener = new grpc.ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        key = heldCallKey(metadata, options.replicaId);
        next(metadata);
      })
      .build();
    const responder = new grpc.ResponderBuilder()
      .withStart((next) => next(listener))
      .withSendStatus((status, next) => {
        if (key === undefined || status.code !== grpc.status.OK) return next(status);
        void holdOnce(options, method.path, key).then(() => next(status));
      })
      .build();
    return new grpc.ServerInterceptingCall(call, responder);
  };
}

/** The call's fault key when it asks this replica to hold its status, else undefined. */
function heldCallKey(metadata: grpc.Metadata, replicaId: string): string | undefined {
  const one = (name: string) => {
    const [value] = metadata.get(name);
    return typeof value === "string" ? value : undefined;
  };
  if (one(faultHeader) !== holdStatusFault) return undefined;
  const replica = one(faultReplicaHeader);
  if (replica !== undefined && replica !== replicaId) return undefined;
  return one(faultKeyHeader);
}

/** Waits `holdMs` the first time `key` is seen across the fleet; at once otherwise. */
async function holdOnce(options: HoldStatusOptions, rpc: string, key: string): Promise<void> {
  // A marker that cannot be set means no fault: the call goes on as it would without one.
  const first = await options.markers.firstTime(holdStatusFault, key, 60_000).catch(() => false);
  if (!first) return;
  options.logger.warn({ fault: holdStatusFault, rpc, key }, statusHeldMessage);
  await sleep(options.holdMs ?? 10_000);
}
