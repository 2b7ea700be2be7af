import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { tlsRefusalReason } from "./tls-refusals.ts";

describe("tlsRefusalReason", () => {
  it("prefers the certificate's verification result to the ECONNRESET Node reports with it", () => {
    assert.equal(tlsRefusalReason("ECONNRESET", "CERT_HAS_EXPIRED"), "expired");
    assert.equal(tlsRefusalReason("ECONNRESET", "UNABLE_TO_GET_ISSUER_CERT_LOCALLY"), "untrusted");
    assert.equal(tlsRefusalReason("ECONNRESET", undefined), "disconnected");
  });

  it("names plaintext and a missing certificate by OpenSSL's codes, and anything unknown other", () => {
    assert.equal(tlsRefusalReason("ERR_SSL_HTTP_REQUEST", undefined), "plaintext");
    assert.equal(tlsRefusalReason("ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE", undefined), "no_certificate");
    assert.equal(tlsRefusalReason("ERR_SSL_NO_SHARED_CIPHER", undefined), "other");
    assert.equal(tlsRefusalReason("ECONNRESET", "SOME_FUTURE_CODE"), "other");
    assert.equal(tlsRefusalReason(undefined, undefined), "other");
  });
});
