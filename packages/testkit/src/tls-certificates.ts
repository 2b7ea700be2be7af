import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A certificate and its key as PEM files. */
export interface CertificateFiles {
  certFile: string;
  keyFile: string;
}

/** How `issue` departs from a day-long client-and-server certificate; every field is optional. */
export interface IssueOptions {
  /**
   * Days the certificate is valid from now (default 1). Negative: its notAfter lies that many
   * days before its notBefore (now), so every verifier finds it expired (CERT_HAS_EXPIRED).
   */
  days?: number;
  /** OpenSSL's `extendedKeyUsage` value (default `serverAuth,clientAuth`), e.g. `serverAuth` alone. */
  extendedKeyUsage?: string;
  /**
   * Raw OpenSSL extension configuration appended after the other lines: sections such as
   * `subjectAltName=@alt` with `[alt]`, or a whole extension in the arbitrary form
   * (`2.5.29.17=ASN1:SEQUENCE:names`, `2.5.29.17=DER:30:03:…`). Pass no `subjectAltNames` then.
   */
  extensions?: string;
}

/** A test certificate authority whose files live in a temporary directory. */
export interface TestCertificateAuthority extends CertificateFiles {
  /**
   * Issues a leaf certificate, with `subjectAltNames` in OpenSSL's spelling
   * (`URI:spiffe://example.org/payments`, `DNS:payments.internal`, `IP:127.0.0.1`; none: no
   * subjectAltName line), into files named after `name` (written again when the same name is
   * issued twice). Valid for a day for server and client authentication unless `options` say otherwise.
   */
  issue(name: string, subjectAltNames: string[], options?: IssueOptions): CertificateFiles;
}

/** Made with the openssl command (P-256 keys); remove the directory with `dispose()`. */
export interface TestPki {
  dir: string;
  authority(name: string): TestCertificateAuthority;
  dispose(): void;
}

const openssl = (args: string[]) => execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });

/** The extension file `issue` signs with: SANs, extended key usage, then the raw configuration. */
function extensionConfig(subjectAltNames: string[], options: IssueOptions): string {
  const lines = subjectAltNames.length > 0 ? [`subjectAltName=${subjectAltNames.join(",")}`] : [];
  lines.push(`extendedKeyUsage=${options.extendedKeyUsage ?? "serverAuth,clientAuth"}`);
  if (options.extensions !== undefined) lines.push(options.extensions);
  return `${lines.join("\n")}\n`;
}

/** A directory of test certificate authorities and the certificates they issue. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "stepgate-pki-"));
  let serial = 1;
  return {
    dir,
    authority(name) {
      const ca = { certFile: join(dir, `${name}-ca.pem`), keyFile: join(dir, `${name}-ca.key`) };
      openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca.keyFile]);
      openssl(
        ["req", "-x509", "-new", "-key", ca.keyFile, "-subj", `/CN=${name} test CA`, "-days", "2"]
          .concat([
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
          ])
          .concat(["-out", ca.certFile]),
      );
      return {
        ...ca,
        issue(leaf, subjectAltNames, options = {}) {
          const files = { certFile: join(dir, `${leaf}.pem`), keyFile: join(dir, `${leaf}.key`) };
          const request = join(dir, `${leaf}.csr`);
          const extensions = join(dir, `${leaf}.ext`);
          writeFileSync(extensions, extensionConfig(subjectAltNames, options));
          openssl(["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", files.keyFile]);
          openssl(["req", "-new", "-key", files.keyFile, "-subj", `/CN=${leaf}`, "-out", request]);
          openssl(
            ["x509", "-req", "-in", request, "-CA", ca.certFile, "-CAkey", ca.keyFile].concat([
              "-set_serial",
              String(serial++),
              "-days",
              String(options.days ?? 1),
              "-extfile",
              extensions,
              "-out",
              files.certFile,
            ]),
          );
          return files;
        },
      };
    },
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
