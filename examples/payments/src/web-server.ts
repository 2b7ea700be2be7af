import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { createStepgateClient } from "@stepgate/client";
import type { GuardDecision } from "@stepgate/guard";
import { paymentsApi } from "./api.ts";
import { ApiError, toErrorResponse } from "./errors.ts";
import { TransferService } from "./gen/payments/v1/transfer_service_pb.ts";
import { type ExecutedTransfer, startTransferService } from "./transfer-service.ts";

export type { ExecutedTransfer } from "./transfer-service.ts";

/** What `startPaymentsWeb` is given. */
export interface PaymentsWebOptions {
  /** TCP port to listen on (0: any free one). The page's origin, `http://localhost:<port>`, must be
   * one of the Stepgate policy's `webauthn.origins`, so a fixed port is the usual choice. */
  port: number;
  /** The Stepgate replicas: IPv4 `host:port` addresses, balanced as one `ipv4:` target, or a single
   * gRPC target used as it is (`ipv4:a:p,b:p`, `dns:///stepgate:50051`, `localhost:50051`). */
  stepgateTargets: readonly string[];
  /** This service's name towards Stepgate (`stepgate-caller`; the grants' audience). Default `payments`. */
  caller?: string;
  /** Address to listen on. Default `127.0.0.1` (the browser reaches it as `localhost`). */
  host?: string;
  /** One call per API request: method, path, status, ms and, on failure, the reason. No bodies. Default: none. */
  log?: (entry: Record<string, unknown>) => void;
  /** Told of each transfer TransferService executed, with the grant it was admitted with. */
  onTransfer?: (transfer: ExecutedTransfer) => void;
  /** The guard's decision on each Transfer call. */
  onDecision?: (decision: GuardDecision) => void;
  /** TransferService's gRPC port on `host` (0, the default: any free one). */
  transferPort?: number;
}

/** A running payments front end. */
export interface PaymentsWeb {
  /** `http://localhost:<port>`: the origin WebAuthn sees. */
  url: string;
  port: number;
  /** TransferService's gRPC port (h2c). */
  transferPort: number;
  /** Stops accepting connections, ends open ones and closes the Stepgate client. */
  close(): Promise<void>;
}

const webDir = join(import.meta.dirname, "../web");
// A fixed list: nothing outside it is ever read from disk.
const staticFiles: Record<string, { file: string; type: string }> = {
  "/": { file: "index.html", type: "text/html; charset=utf-8" },
  "/app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "/style.css": { file: "style.css", type: "text/css; charset=utf-8" },
};
const maxBodyBytes = 64 * 1024;
const securityHeaders = {
  "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store",
};

/** The gRPC target for `targets`, as `PaymentsWebOptions.stepgateTargets` describes. Throws on an empty list
 * or several entries that are not IPv4 `host:port`. */
export function stepgateTarget(targets: readonly string[]): string {
  if (targets.length === 1 && targets[0]) return targets[0];
  if (targets.length === 0 || !targets.every((t) => /^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/.test(t))) {
    throw new Error(
      `stepgateTargets: one gRPC target, or IPv4 host:port addresses (got ${targets.join(",")})`,
    );
  }
  return `ipv4:${targets.join(",")}`;
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  if (!(req.headers["content-type"] ?? "").startsWith("application/json")) {
    // Forms from other sites cannot send application/json without a CORS preflight, which this server refuses.
    throw new ApiError(415, { error: "BAD_REQUEST", message: "send application/json" });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) throw new ApiError(413, { error: "BAD_REQUEST", message: "body too large" });
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    if (typeof value === "object" && value !== null && !Array.isArray(value))
      return value as Record<string, unknown>;
  } catch {}
  throw new ApiError(400, { error: "BAD_REQUEST", message: "the body must be a JSON object" });
}

function send(res: ServerResponse, status: number, type: string, body: string | Buffer): void {
  res.writeHead(status, { ...securityHeaders, "content-type": type });
  res.end(body);
}

/**
 * Starts the payments example: TransferService (gRPC, Transfer behind @stepgate/guard) and the
 * page (`/`, `/app.js`, `/style.css`) with its JSON API (see `paymentsApi` and the README), which
 * calls Transfer over gRPC and Stepgate through `@stepgate/client`. Errors answer JSON `ErrorBody`
 * (`errors.ts`). Resolves once both listen; rejects with a `listen` error (e.g. EADDRINUSE), or
 * throws for bad targets.
 */
export async function startPaymentsWeb(options: PaymentsWebOptions): Promise<PaymentsWeb> {
  const { log = () => {} } = options;
  const client = createStepgateClient({
    target: stepgateTarget(options.stepgateTargets),
    caller: options.caller ?? "payments",
  });
  const host = options.host ?? "127.0.0.1";
  const service = await startTransferService({
    stepgate: client,
    port: options.transferPort ?? 0,
    host,
    ...(options.onTransfer ? { onTransfer: options.onTransfer } : {}),
    ...(options.onDecision ? { onDecision: options.onDecision } : {}),
  });
  const transfers = createClient(
    TransferService,
    createGrpcTransport({ baseUrl: `http://${host}:${service.port}`, defaultTimeoutMs: 10_000 }),
  );
  const api = paymentsApi(client, transfers);

  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://localhost").pathname;
    const asset = staticFiles[path];
    if (req.method === "GET" && asset) {
      readFile(join(webDir, asset.file)).then(
        (data) => send(res, 200, asset.type, data),
        () => send(res, 500, "text/plain", "not readable"),
      );
      return;
    }
    const handler = req.method === "POST" ? api[path] : undefined;
    if (!handler) {
      send(res, 404, "application/json", JSON.stringify({ error: "NOT_FOUND", message: "no such route" }));
      return;
    }
    const started = performance.now();
    readJson(req)
      .then(handler)
      .then(
        (answer) => ({ status: 200, body: answer, reason: undefined }),
        (error: unknown) => {
          const { status, body } = toErrorResponse(error);
          return { status, body, reason: body.error };
        },
      )
      .then(({ status, body, reason }) => {
        send(res, status, "application/json", JSON.stringify(body));
        log({ method: req.method, path, status, ms: Math.round(performance.now() - started), reason });
      });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://localhost:${port}`,
    port,
    transferPort: service.port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await service.close();
      client.close();
    },
  };
}
