// Callers named by client certificates that OpenSSL issued, with every GeneralName kind and with
// text that reads like a URI or DNS name inside other kinds: only typed URI and DNS names count, and
// a certificate that names two callers names none.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { PeerCertificate } from "node:tls";
import { Code, ConnectError, createContextValues } from "@connectrpc/connect";
import { callerHeader, StepUpService } from "@stepgate/api";
import { peerCertificateKey } from "@stepgate/grpc-bridge";
import {
  createTestPki,
  type IssueOptions,
  type TestCertificateAuthority,
  type TestPki,
} from "@stepgate/testkit";
import { handlerContextFor } from "@stepgate/testkit/handler-context";
import * as sans from "@stepgate/testkit/san-certificates";
import { callerFromCertificate } from "./caller.ts";
import { certificateNames } from "./certificate-names.ts";

const paymentsId = "spiffe://example.org/ns/prod/sa/payments";
const peers = new Map([
  [paymentsId, "payments"],
  ["payments.internal", "payments"],
  ["orders.internal", "orders"],
  [sans.hiddenSpiffeId, "enrol"],
]);

/** The client certificate as grpc-js hands it over (Node's PeerCertificate), read from its PEM file. */
function peerCertificate(certFile: string): PeerCertificate {
  const x509 = new X509Certificate(readFileSync(certFile));
  return {
    raw: x509.raw,
    fingerprint256: x509.fingerprint256,
    ...(x509.subjectAltName === undefined ? {} : { subjectaltname: x509.subjectAltName }),
  } as PeerCertificate;
}

/** The caller `callerFromCertificate` names for `certificate`, or the refusal's message. */
function identify(certificate: PeerCertificate | undefined, header?: string): string {
  const ctx = handlerContextFor(StepUpService.method.getJwks, {
    requestHeader: header === undefined ? {} : { [callerHeader]: header },
    contextValues: createContextValues().set(peerCertificateKey, certificate),
  });
  try {
    return callerFromCertificate(peers)(ctx);
  } catch (error) {
    assert.ok(error instanceof ConnectError && error.code === Code.Unauthenticated, String(error));
    return `refused: ${error.rawMessage}`;
  }
}

let pki: TestPki;
let ca: TestCertificateAuthority;
before(() => {
  pki = createTestPki();
  ca = pki.authority("callers");
});
after(() => pki?.dispose());
const issued = (name: string, altNames: string[], options?: IssueOptions) =>
  peerCertificate(ca.issue(name, altNames, options).certFile);
const der = (name: string, altNames: string[], options?: IssueOptions) =>
  new Uint8Array(issued(name, altNames, options).raw);

describe("callerFromCertificate", () => {
  it("names the caller of a typed URI or DNS name; DNS without case, URIs exactly", () => {
    assert.equal(identify(issued("uri", [`URI:${paymentsId}`])), "payments");
    assert.equal(identify(issued("dns", ["DNS:Orders.INTERNAL"])), "orders");
    assert.match(identify(issued("uri-case", [`URI:${paymentsId.toUpperCase()}`])), /^refused: .*names no/);
  });

  for (const [kind, extensions] of Object.entries(sans.hiddenNameExtensions("orders.internal"))) {
    it(`names no caller from a URI or DNS name written inside the ${kind} entry`, () => {
      assert.match(identify(issued(`hidden-${kind}`, [], { extensions })), /^refused: .*names no/);
    });
  }

  it("takes only the typed URI and DNS names of a certificate holding every GeneralName kind", () => {
    const certificate = issued("every-kind", [], { extensions: sans.everyGeneralNameExtension(paymentsId) });
    assert.equal(identify(certificate), "payments");
  });

  it("refuses a certificate whose names map to two callers, whatever their order", () => {
    for (const sans of [
      [`URI:${paymentsId}`, "DNS:orders.internal"],
      ["DNS:orders.internal", `URI:${paymentsId}`],
    ]) {
      assert.match(identify(issued("two-callers", sans)), /^refused: .*more than one calling service/);
    }
  });

  it("names the caller once when several names map to it", () => {
    const sans = [`URI:${paymentsId}`, "DNS:Payments.Internal", "DNS:unmapped.internal"];
    assert.equal(identify(issued("same-caller", sans)), "payments");
  });

  it("refuses a URI name that spells a DNS peer, a missing certificate and a header naming another caller", () => {
    assert.match(identify(issued("uri-as-dns", ["URI:orders.internal"])), /^refused: .*names no/);
    assert.match(identify(undefined), /^refused: a client certificate is required/);
    assert.match(identify(issued("header", [`URI:${paymentsId}`]), "orders"), /^refused: .*header/);
  });
});

describe("certificateNames", () => {
  it("reads typed URI and DNS names, DNS names in lower case, URIs as written", () => {
    const names = certificateNames(
      der("typed", [`URI:${paymentsId}/Mixed`, "DNS:Orders.Internal", "IP:127.0.0.1"]),
    );
    assert.deepEqual(names, { uris: [`${paymentsId}/Mixed`], dnsNames: ["orders.internal"] });
  });

  it("of one GeneralName of each kind, keeps only the URI and the DNS name, each whole", () => {
    const names = certificateNames(
      der("every-kind", [], { extensions: sans.everyGeneralNameExtension(paymentsId) }),
    );
    assert.deepEqual(names, { uris: [paymentsId], dnsNames: [sans.everyGeneralNameDnsName.toLowerCase()] });
  });

  for (const [kind, extensions] of Object.entries(sans.hiddenNameExtensions("orders.internal"))) {
    it(`finds no name in the ${kind} entry whose text holds a URI or DNS name`, () => {
      assert.deepEqual(certificateNames(der(`hidden-${kind.replaceAll(" ", "-")}`, [], { extensions })), {
        uris: [],
        dnsNames: [],
      });
    });
  }

  it("gives no names to a certificate without the extension", () => {
    assert.deepEqual(certificateNames(der("no-names", [])), { uris: [], dnsNames: [] });
  });

  it("gives undefined for DER it cannot read: garbage, a cut certificate, a cut extension, two extensions", () => {
    const whole = der("whole", [`URI:${paymentsId}`], {
      extensions: "issuerAltName=URI:spiffe://example.org/other",
    });
    assert.equal(certificateNames(new Uint8Array([0x30, 0x03, 0x02, 0x01])), undefined);
    assert.equal(certificateNames(whole.subarray(0, whole.length - 10)), undefined);
    assert.equal(
      certificateNames(der("cut-names", [], { extensions: sans.truncatedNamesExtension })),
      undefined,
    );
    // The issuerAltName's OID (2.5.29.18) rewritten to subjectAltName's: two of the same extension.
    const twice = Buffer.from(whole);
    const issuerAltName = Buffer.from([0x06, 0x03, 0x55, 0x1d, 0x12]);
    const at = twice.indexOf(issuerAltName);
    assert.ok(at > 0);
    twice[at + 4] = 0x11;
    assert.deepEqual(certificateNames(whole)?.uris, [paymentsId]);
    assert.equal(certificateNames(twice), undefined);
  });
});
