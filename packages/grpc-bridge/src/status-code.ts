import { Code } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";

/** The gRPC status a Connect code travels as on the wire. */
export function grpcStatusFromCode(code: Code): grpc.status {
  // Connect codes are the gRPC status codes 1-16 by definition, so the number carries over.
  return code as number as grpc.status;
}

/** The Connect code for a gRPC status received from grpc-js. */
export function codeFromGrpcStatus(status: number): Code {
  // OK (0) has no Connect code and anything outside 1-16 is not a valid status: both are Unknown,
  // as gRPC's spec says for a status a client does not recognise.
  return status in Code && status !== 0 ? (status as Code) : Code.Unknown;
}
