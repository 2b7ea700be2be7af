import type { TLSSocket } from "node:tls";
import type * as grpc from "@grpc/grpc-js";
import { grpcHttp2Servers } from "@stepgate/grpc-bridge";
import type { Logger } from "../log/logger.ts";
import { rateLimitedLines } from "../log/rate-limited-lines.ts";
import type { Metrics } from "../observability/metrics.ts";

/** Why a TLS handshake was refused: the `reason` of `stepgate.tls.handshakes_refused`. */
export const tlsRefusalReasons = [
  "no_certificate",
  "untrusted",
  "expired",
  "not_yet_valid",
  "wrong_purpose",
  "plaintext",
  "timeout",
  "disconnected",
  "other",
] as const;

export type TlsRefusalReason = (typeof tlsRefusalReasons)[number];

// Node's names for OpenSSL's verification results (X509_V_ERR_*) and handshake errors, as seen in
// real handshakes against a grpc-js server requiring client certificates.
const reasonOfCode: Readonly<Record<string, TlsRefusalReason>> = {
  ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE: "no_certificate",
  UNABLE_TO_GET_ISSUER_CERT: "untrusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "untrusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "untrusted",
  SELF_SIGNED_CERT_IN_CHAIN: "untrusted",
  DEPTH_ZERO_SELF_SIGNED_CERT: "untrusted",
  CERT_SIGNATURE_FAILURE: "untrusted",
  CERT_UNTRUSTED: "untrusted",
  CERT_REJECTED: "untrusted",
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not_yet_valid",
  INVALID_PURPOSE: "wrong_purpose",
  // OpenSSL reads the first bytes of a plaintext HTTP/2 preface or HTTP/1 request as a bad record.
  ERR_SSL_WRONG_VERSION_NUMBER: "plaintext",
  ERR_SSL_HTTP_REQUEST: "plaintext",
  ERR_SSL_HTTPS_PROXY_REQUEST: "plaintext",
  ERR_TLS_HANDSHAKE_TIMEOUT: "timeout",
  ECONNRESET: "disconnected",
};

/**
 * The reason of one refused handshake, from what Node's `tlsClientError` carries: the socket's
 * `authorizationError` when the client certificate failed verification (Node then ends the
 * handshake itself and reports ECONNRESET), else the error's code. Unknown codes are "other".
 */
export function tlsRefusalReason(
  code: string | undefined,
  authorizationError: string | undefined,
): TlsRefusalReason {
  return reasonOfCode[authorizationError ?? code ?? ""] ?? "other";
}

/** Where `watchTlsRefusals` reports. */
export interface TlsRefusalReports {
  metrics: Pick<Metrics, "tlsHandshakesRefused">;
  logger: Logger;
  /** At most one log line per reason per this many ms; the others are counted in the next. */
  logIntervalMs: number;
}

/**
 * Counts every TLS handshake the HTTP/2 servers of `server` refuse (no client certificate, an
 * untrusted or expired one, plaintext, ...) in `stepgate.tls.handshakes_refused{reason}`, closes its
 * socket, and logs it rate-limited: a `warn` line with the reason and Node's code, never certificate
 * contents (nor the peer's address, which Node no longer knows once it has ended a failed
 * verification). Call after `bindAsync`, which creates those servers.
 */
export function watchTlsRefusals(server: grpc.Server, reports: TlsRefusalReports): void {
  const { metrics, logger } = reports;
  for (const reason of tlsRefusalReasons) metrics.tlsHandshakesRefused(reason, 0);
  const log = rateLimitedLines<TlsRefusalReason, { code: string }>(reports.logIntervalMs, (line) =>
    "first" in line
      ? logger.warn({ reason: line.key, ...line.first }, "TLS handshake refused")
      : logger.warn(
          { reason: line.key, suppressed: line.suppressed },
          "TLS handshakes refused, lines suppressed",
        ),
  );
  for (const http2 of grpcHttp2Servers(server)) {
    http2.on("tlsClientError", (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      // Node sets a code string there, though its type says Error.
      const verification = socket.authorizationError as unknown;
      const authorizationError = typeof verification === "string" ? verification : undefined;
      const reason = tlsRefusalReason(error.code, authorizationError);
      metrics.tlsHandshakesRefused(reason, 1);
      log(reason, { code: authorizationError ?? error.code ?? "none" });
      // Node closes most failed handshakes itself, but leaves a timed-out one's socket open.
      socket.destroy();
    });
  }
}
