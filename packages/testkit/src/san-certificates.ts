// Subject alternative names that read like a URI or DNS name in Node's `subjectaltname` text
// without being one: OpenSSL extension configurations for `IssueOptions.extensions`.

/** A SPIFFE ID these configurations hide inside other kinds of GeneralName. */
export const hiddenSpiffeId = "spiffe://example.org/ns/prod/sa/enrol";

/**
 * One-entry subjectAltNames whose text ends in ` URI:<hiddenSpiffeId>` or holds `, DNS:<dnsName>`,
 * in an rfc822Name (email), a directoryName (DirName) or an otherName (UPN): none is a URI or a
 * DNS name, so none may name a caller.
 */
export function hiddenNameExtensions(dnsName: string): Record<string, string> {
  return {
    email: `subjectAltName=email:x@example.org URI:${hiddenSpiffeId}`,
    "email with a comma": `subjectAltName=@alt\n[alt]\nemail.1=y@example.org, DNS:${dnsName}`,
    DirName: `subjectAltName=dirName:dir\n[dir]\nCN=x URI:${hiddenSpiffeId}`,
    "DirName with a comma": `subjectAltName=dirName:dir\n[dir]\nCN=x, URI:${hiddenSpiffeId}`,
    "othername UPN": `subjectAltName=otherName:1.3.6.1.4.1.311.20.2.3;UTF8:u@example.org URI:${hiddenSpiffeId}`,
  };
}

/**
 * A subjectAltName holding one GeneralName of each of the nine kinds of RFC 5280 §4.2.1.6, in
 * OpenSSL's arbitrary-extension form (the only one that writes x400Address and ediPartyName).
 * Its one URI is `uri`; its one DNS name is `A"b\c, URI:<hiddenSpiffeId>` (a quote, a backslash
 * and a comma); every other entry's text holds ` URI:<hiddenSpiffeId>` too.
 */
export function everyGeneralNameExtension(uri: string): string {
  const hidden = `URI:${hiddenSpiffeId}`;
  return [
    "2.5.29.17=ASN1:SEQUENCE:names",
    "[names]",
    "other=IMPLICIT:0,SEQUENCE:upn",
    `email=IMPLICIT:1,IA5STRING:x@example.org ${hidden}`,
    `dns=IMPLICIT:2,IA5STRING:A\\"b\\\\c, ${hidden}`,
    "x400=IMPLICIT:3,SEQUENCE:x400",
    "dir=EXPLICIT:4,SEQUENCE:dir",
    "edi=IMPLICIT:5,SEQUENCE:edi",
    `uri=IMPLICIT:6,IA5STRING:${uri}`,
    "ip=IMPLICIT:7,FORMAT:HEX,OCTETSTRING:7f000001",
    "rid=IMPLICIT:8,OID:1.2.3.4",
    "[upn]",
    "type=OID:1.3.6.1.4.1.311.20.2.3",
    `value=EXPLICIT:0,UTF8String:u@example.org ${hidden}`,
    "[x400]",
    "standard=SEQUENCE:x400_standard",
    "[x400_standard]",
    "country=EXPLICIT:1A,PRINTABLESTRING:US",
    "[dir]",
    "rdn=SET:rdn",
    "[rdn]",
    "cn=SEQUENCE:cn",
    "[cn]",
    "type=OID:commonName",
    `value=UTF8String:x, ${hidden}`,
    "[edi]",
    `party=EXPLICIT:1,UTF8String:x ${hidden}`,
  ].join("\n");
}

/** The DNS name `everyGeneralNameExtension` holds, as written. */
export const everyGeneralNameDnsName = `A"b\\c, URI:${hiddenSpiffeId}`;

/** A subjectAltName extension whose DER is cut short: no parser can read its names. */
export const truncatedNamesExtension = "2.5.29.17=DER:30:05:86:03:61";
