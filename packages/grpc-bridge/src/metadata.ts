import { decodeBinaryHeader, encodeBinaryHeader } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";

// Set by grpc-js itself from the call; copying them from user headers would corrupt the call.
const protocolKeys = new Set([
  "content-type",
  "te",
  "user-agent",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
]);

/**
 * Copy Fetch API headers into grpc-js metadata. Values of `-bin` keys are base64 in Headers
 * (Connect's convention) and raw bytes in Metadata. Throws on keys or values gRPC cannot carry.
 */
export function metadataFromHeaders(headers: Headers, into = new grpc.Metadata()): grpc.Metadata {
  headers.forEach((value, key) => {
    if (protocolKeys.has(key)) {
      return;
    }
    if (key.endsWith("-bin")) {
      // Headers joins repeated values with ", ".
      for (const part of value.split(",")) {
        into.add(key, Buffer.from(decodeBinaryHeader(part.trim())));
      }
      return;
    }
    into.add(key, value);
  });
  return into;
}

/** Copy grpc-js metadata into Fetch API headers, base64-encoding the values of `-bin` keys. */
export function headersFromMetadata(metadata: grpc.Metadata, into = new Headers()): Headers {
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    for (const value of values) {
      into.append(key, typeof value === "string" ? value : encodeBinaryHeader(value));
    }
  }
  return into;
}
