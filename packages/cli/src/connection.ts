import { readFileSync } from "node:fs";
import { type Client, createClient } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { AdminService, operatorHeader } from "@stepgate/api";
import { createGrpcJsTransport } from "@stepgate/grpc-bridge";
import { UsageError } from "./exit-codes.ts";

/** How the CLI reaches replicas and proves the operator. */
export interface ConnectionOptions {
  /** Mutual TLS files (PEM); all three or none. Without them the channel is plaintext (insecure dev mode). */
  tls?: { certFile: string; keyFile: string; caFile: string };
  /** Insecure development mode only: the operator the `stepgate-operator` header names. */
  operator?: string;
  /** Each call's deadline, in ms. */
  timeoutMs: number;
}

/** An AdminService client over one channel, and how to close it. */
export interface AdminConnection {
  admin: Client<typeof AdminService>;
  /** The headers every call carries (the operator's name in insecure mode). */
  headers: Record<string, string>;
  close(): void;
}

/** The replicas a target names, one address each: `ipv4:a:1,b:2` gives two; `dns:///h:1` or `h:1` one. */
export function replicaTargets(target: string): string[] {
  const list = /^ipv[46]:(.*)$/.exec(target);
  if (!list) return [target];
  const scheme = target.slice(0, 5);
  return (list[1] ?? "")
    .split(",")
    .filter((a) => a !== "")
    .map((address) => `${scheme}${address}`);
}

function readPem(what: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch {
    throw new UsageError(`cannot read the ${what} file ${file}`);
  }
}

/** The channel credentials: mutual TLS from the PEM files, or plaintext. */
export function credentialsFor(tls: ConnectionOptions["tls"]): grpc.ChannelCredentials {
  if (tls === undefined) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(
    readPem("CA bundle", tls.caFile),
    readPem("private key", tls.keyFile),
    readPem("certificate", tls.certFile),
  );
}

/**
 * A client for `target` (any grpc-js target). No retries: a refused command is reported as it
 * came, and `status` asks each replica over a channel of its own.
 */
export function connect(target: string, options: ConnectionOptions): AdminConnection {
  const channel = new grpc.Channel(target, credentialsFor(options.tls), {
    "grpc.enable_retries": 0,
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
  });
  const transport = createGrpcJsTransport({ channel, defaultTimeoutMs: options.timeoutMs });
  return {
    admin: createClient(AdminService, transport),
    headers: options.operator === undefined ? {} : { [operatorHeader]: options.operator },
    close: () => channel.close(),
  };
}
