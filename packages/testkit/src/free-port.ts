import { createServer } from "node:net";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the kernel picks one for a listener, which is
 * closed again before this resolves. Another process may take it before the caller listens on it,
 * which is unlikely in the ephemeral range. Rejects with the `listen` error (e.g. EADDRNOTAVAIL).
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
