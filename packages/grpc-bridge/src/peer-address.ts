import { createContextKey } from "@connectrpc/connect";

/**
 * The client's address as grpc-js reports it (`"127.0.0.1:54321"`), in `ctx.values` of every
 * call served by `addService`: Connect's HandlerContext has no field for it.
 */
export const peerAddressKey = createContextKey<string | undefined>(undefined, {
  description: "grpc peer address",
});
