// Single TLS handshakes a replica should refuse, and the count of those it did.
import { readFileSync } from "node:fs";
import { type Socket, connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { CertificateFiles } from "@stepgate/testkit";

/** The HTTP/2 connection preface a plaintext gRPC client opens with. */
export const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/**
 * One TLS connection to 127.0.0.1:`port` trusting `caFile` and presenting `client` (none when
 * undefined), speaking HTTP/2 once the handshake is done. Errors are ignored: the caller reads what
 * the server counted, and destroys the socket.
 */
export function tlsAttempt(port: number, caFile: string, client?: CertificateFiles): Socket {
  const socket = tlsConnect(
    {
      host: "127.0.0.1",
      port,
      ALPNProtocols: ["h2"],
      ca: readFileSync(caFile),
      ...(client ? { cert: readFileSync(client.certFile), key: readFileSync(client.keyFile) } : {}),
    },
    () => socket.write(http2Preface),
  );
  socket.on("error", () => {});
  return socket;
}

/** One plain TCP connection to 127.0.0.1:`port` that sends `bytes`, or closes at once without any. */
export function plaintextAttempt(port: number, bytes?: string): Socket {
  const socket = tcpConnect(port, "127.0.0.1", () =>
    bytes === undefined ? socket.end() : socket.write(bytes),
  );
  socket.on("error", () => {});
  return socket;
}

/** `stepgate_tls_handshakes_refused_total` by reason, read from a replica's Prometheus endpoint. */
export async function refusedHandshakes(prometheusPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${prometheusPort}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const line of text.split("\n")) {
    const sample = /^stepgate_tls_handshakes_refused_total\{[^}]*reason="([a-z_]+)"[^}]*\} (\S+)/.exec(line);
    if (sample?.[1] !== undefined) counts[sample[1]] = Number(sample[2]);
  }
  return counts;
}
