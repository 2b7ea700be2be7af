import { Code, ConnectError } from "@connectrpc/connect";
import { ErrorInfoSchema } from "@stepgate/api/gen/google/rpc/error_details_pb";

/**
 * How a failed call is counted: `<gRPC code name>/<ErrorInfo reason>`, e.g.
 * `UNAVAILABLE/STORE_UNAVAILABLE`, or `<code name>/<first 60 characters of the message>` when the
 * error carries no reason (e.g. `DEADLINE_EXCEEDED/the operation timed out`). Anything thrown that is
 * not a ConnectError becomes one (code UNKNOWN). Throws nothing.
 */
export function failureKey(error: unknown): string {
  const e = ConnectError.from(error);
  const reason = e.findDetails(ErrorInfoSchema)[0]?.reason;
  return `${grpcCodeName(e.code)}/${reason ?? e.rawMessage.slice(0, 60)}`;
}

/** The gRPC name of a status code, e.g. `RESOURCE_EXHAUSTED` for Connect's `Code.ResourceExhausted`
 * (8); the number itself for a code gRPC does not define. Throws nothing. */
export function grpcCodeName(code: Code): string {
  const name = Code[code];
  return name === undefined ? String(code) : name.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}

/** The ErrorInfo reason of a failed call (e.g. `CODE_REPLAYED`), or `undefined` if it has none. */
export function failureReason(error: unknown): string | undefined {
  return ConnectError.from(error).findDetails(ErrorInfoSchema)[0]?.reason;
}
