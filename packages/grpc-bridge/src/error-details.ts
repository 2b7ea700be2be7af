import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { anyPack } from "@bufbuild/protobuf/wkt";
import { ConnectError } from "@connectrpc/connect";
import type * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "@stepgate/api/gen/google/rpc/status_pb";
import { headersFromMetadata } from "./metadata.ts";
import { codeFromGrpcStatus } from "./status-code.ts";

/** The trailer that carries a binary google.rpc.Status with the error details. */
export const statusDetailsKey = "grpc-status-details-bin";

const typeUrlPrefix = "type.googleapis.com/";

/**
 * Encode a ConnectError as a binary google.rpc.Status for the `grpc-status-details-bin` trailer:
 * outgoing details are packed into Any, details received from another server keep their bytes.
 */
export function statusDetailsFromError(err: ConnectError): Buffer {
  const cached = encodedDetails.get(err);
  if (cached) return cached;
  const status = create(StatusSchema, {
    code: err.code,
    message: err.rawMessage,
    details: err.details.map((detail) =>
      "desc" in detail
        ? anyPack(detail.desc, create(detail.desc, detail.value))
        : { typeUrl: typeUrlPrefix + detail.type, value: detail.value },
    ),
  });
  const bytes = toBinary(StatusSchema, status);
  const encoded = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  encodedDetails.set(err, encoded);
  return encoded;
}

// An error a server answers with again and again (a prebuilt refusal) is encoded once.
const encodedDetails = new WeakMap<ConnectError, Buffer>();

/**
 * Turn a grpc-js client error into a ConnectError with the same code, the status message,
 * the trailers as metadata and the details from `grpc-status-details-bin`, so that
 * `err.findDetails(Schema)` works as it does with Connect's own transports.
 */
export function connectErrorFromStatus(serviceError: grpc.ServiceError): ConnectError {
  // grpc-js always sets metadata, but errors built by hand (or by interceptors) may not.
  const metadata = serviceError.metadata as grpc.Metadata | undefined;
  const error = new ConnectError(
    serviceError.details,
    codeFromGrpcStatus(serviceError.code),
    metadata === undefined ? undefined : headersFromMetadata(metadata),
    undefined,
    serviceError,
  );
  const [statusBytes] = metadata?.get(statusDetailsKey) ?? [];
  if (statusBytes instanceof Uint8Array) {
    error.details = detailsFromStatus(statusBytes);
  }
  // Tells a Connect server that rethrows this error not to relay our trailers as its own.
  error.isWireError = true;
  return error;
}

function detailsFromStatus(bytes: Uint8Array): ConnectError["details"] {
  try {
    return fromBinary(StatusSchema, bytes).details.map((any) => ({
      type: any.typeUrl.substring(any.typeUrl.lastIndexOf("/") + 1),
      value: any.value,
    }));
  } catch {
    // A corrupt details trailer must not hide the status code and message that did arrive.
    return [];
  }
}
