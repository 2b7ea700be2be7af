import type { PeerCertificate } from "node:tls";
import { createContextKey } from "@connectrpc/connect";

/**
 * The client certificate of a call served over TLS (Node's `tls.PeerCertificate`, whose
 * `subjectaltname` reads like `"URI:spiffe://example.org/payments, DNS:payments.internal"`), in
 * `ctx.values` of every call served by `addService`; undefined over plaintext or without one.
 */
export const peerCertificateKey = createContextKey<PeerCertificate | undefined>(undefined, {
  description: "grpc peer certificate",
});
