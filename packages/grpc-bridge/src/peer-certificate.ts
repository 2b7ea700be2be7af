import type { PeerCertificate } from "node:tls";
import { createContextKey } from "@connectrpc/connect";

/**
 * The client certificate of a call served over TLS (Node's `tls.PeerCertificate`), in `ctx.values`
 * of every call served by `addService`; undefined over plaintext or without one. Read identities
 * from its DER (`raw`): its `subjectaltname` is unquoted text in which one kind of name can spell
 * another.
 */
export const peerCertificateKey = createContextKey<PeerCertificate | undefined>(undefined, {
  description: "grpc peer certificate",
});
