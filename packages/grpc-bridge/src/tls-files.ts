import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import * as grpc from "@grpc/grpc-js";

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

/** PEM files of one TLS endpoint: its own certificate chain and key, and the CA bundle it trusts. */
export interface TlsFiles {
  /** This endpoint's certificate chain (PEM). */
  certFile: string;
  /** Its private key (PEM). */
  keyFile: string;
  /** The CA certificates (PEM bundle) the other side's certificate must chain to. */
  caFile: string;
  /** How often the files are read again, in ms; a change applies to new connections. Default 10000. */
  reloadMs?: number;
  /** Told when a changed set of files was taken, or could not be (the last good set stays). */
  onReload?: (outcome: { ok: true } | { ok: false; reason: string }) => void;
}

/** A grpc-js certificate provider over files that are watched, and closed with `close()`. */
export interface WatchedTlsFiles extends CertificateProvider {
  /** Stops reading the files. */
  close(): void;
}

interface Loaded {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
}

/**
 * Reads the three files now (throws an Error naming the file that cannot be read or the pair that
 * does not match, never its content) and again every `reloadMs`. A changed set is taken only if it
 * forms a valid TLS context, so a rotation caught half-written keeps the last good certificates
 * until the next read instead of refusing every handshake. New connections use the new set;
 * established ones keep theirs.
 */
export function watchTlsFiles(files: TlsFiles): WatchedTlsFiles {
  let current = load(files);
  const caListeners = new Set<CaListener>();
  const identityListeners = new Set<IdentityListener>();
  const publish = () => {
    for (const listener of caListeners) listener({ caCertificate: current.ca });
    for (const listener of identityListeners)
      listener({ certificate: current.cert, privateKey: current.key });
  };
  // A refused set is reported once, not on every read until it is fixed.
  let refused: string | undefined;
  const timer = setInterval(() => {
    let next: Loaded;
    try {
      next = load(files);
    } catch (error) {
      const reason = (error as Error).message;
      if (reason !== refused) files.onReload?.({ ok: false, reason });
      refused = reason;
      return;
    }
    refused = undefined;
    if (next.cert.equals(current.cert) && next.key.equals(current.key) && next.ca.equals(current.ca)) return;
    current = next;
    publish();
    files.onReload?.({ ok: true });
  }, files.reloadMs ?? 10_000);
  timer.unref();
  return {
    addCaCertificateListener(listener) {
      caListeners.add(listener);
      process.nextTick(listener, { caCertificate: current.ca });
    },
    removeCaCertificateListener: (listener) => caListeners.delete(listener),
    addIdentityCertificateListener(listener) {
      identityListeners.add(listener);
      process.nextTick(listener, { certificate: current.cert, privateKey: current.key });
    },
    removeIdentityCertificateListener: (listener) => identityListeners.delete(listener),
    close: () => clearInterval(timer),
  };
}

function load(files: TlsFiles): Loaded {
  const read = (what: string, path: string) => {
    try {
      return readFileSync(path);
    } catch {
      throw new Error(`cannot read the ${what} file ${path}`);
    }
  };
  const loaded = {
    cert: read("certificate", files.certFile),
    key: read("private key", files.keyFile),
    ca: read("CA bundle", files.caFile),
  };
  try {
    // Node checks that the key matches the certificate and that every PEM block parses.
    createSecureContext(loaded);
  } catch {
    throw new Error(
      `${files.certFile}, ${files.keyFile} and ${files.caFile} do not form a valid TLS identity`,
    );
  }
  return loaded;
}

/**
 * Server credentials that require a client certificate chaining to the watched CA bundle (mutual
 * TLS), over files reloaded as `watchTlsFiles` says.
 */
export function mutualTlsServerCredentials(files: WatchedTlsFiles): grpc.ServerCredentials {
  return grpc.experimental.createCertificateProviderServerCredentials(files, files, true);
}

/**
 * Channel credentials that present the watched certificate and trust the watched CA bundle. The
 * server's name is checked against the target's host, as grpc-js does for `createSsl`.
 */
export function mutualTlsChannelCredentials(files: WatchedTlsFiles): grpc.ChannelCredentials {
  return grpc.experimental.createCertificateProviderChannelCredentials(files, files);
}
