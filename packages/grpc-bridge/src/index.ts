export type { AddServiceOptions, CallEndInfo } from "./add-service.ts";
export { addService } from "./add-service.ts";
export { connectErrorFromStatus, statusDetailsFromError, statusDetailsKey } from "./error-details.ts";
export type { GrpcJsTransportOptions } from "./grpc-js-transport.ts";
export { createGrpcJsTransport } from "./grpc-js-transport.ts";
export { createGrpcServiceDefinition } from "./grpc-service-definition.ts";
export { headersFromMetadata, metadataFromHeaders } from "./metadata.ts";
export { peerAddressKey } from "./peer-address.ts";
export { codeFromGrpcStatus, grpcStatusFromCode } from "./status-code.ts";
