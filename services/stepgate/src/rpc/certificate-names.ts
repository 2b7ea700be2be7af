import { fromBER } from "asn1js";
import { AltName, Certificate, type GeneralName } from "pkijs";

const subjectAltNameOid = "2.5.29.17";
// GeneralName CHOICE tags (RFC 5280 §4.2.1.6): the only two kinds that may name a caller.
const dNSName = 2;
const uniformResourceIdentifier = 6;

/** The names of a client certificate that may name a caller. */
export interface CertificateNames {
  /** Its uniformResourceIdentifier names (SPIFFE IDs), exactly as written. */
  uris: string[];
  /** Its dNSName names, ASCII letters in lower case: DNS names compare without case (RFC 4343). */
  dnsNames: string[];
}

/**
 * The typed URI and DNS names of the subjectAltName extension (RFC 5280 §4.2.1.6, GeneralNames) of
 * the DER certificate `der`, read from its ASN.1 structure, never from a text rendering of it.
 * Entries of every other kind (otherName, rfc822Name, x400Address, directoryName, ediPartyName,
 * iPAddress, registeredID) are skipped whatever text they hold. A certificate without the extension
 * has no names. Returns undefined, and throws nothing, when the certificate or its extension cannot
 * be parsed, or the extension appears more than once (RFC 5280 §4.2).
 */
export function certificateNames(der: Uint8Array): CertificateNames | undefined {
  try {
    const extensions = (Certificate.fromBER(der).extensions ?? []).filter(
      (extension) => extension.extnID === subjectAltNameOid,
    );
    if (extensions.length > 1) return undefined;
    const names: CertificateNames = { uris: [], dnsNames: [] };
    for (const name of extensions[0] ? generalNames(extensions[0].extnValue.getValue()) : []) {
      if (name.type === uniformResourceIdentifier) names.uris.push(text(name));
      if (name.type === dNSName) names.dnsNames.push(asciiLowerCase(text(name)));
    }
    return names;
  } catch {
    return undefined;
  }
}

/** The GeneralNames of an extension value; throws unless the whole value is one valid sequence. */
function generalNames(der: ArrayBuffer): GeneralName[] {
  const parsed = fromBER(der);
  if (parsed.offset !== der.byteLength) throw new Error("the subjectAltName extension is not valid DER");
  return new AltName({ schema: parsed.result }).altNames;
}

function text(name: GeneralName): string {
  if (typeof name.value !== "string") throw new Error("an IA5String name did not decode to text");
  return name.value;
}

// Only A-Z fold: String#toLowerCase would also fold non-ASCII letters (e.g. the Kelvin sign to k).
function asciiLowerCase(name: string): string {
  return name.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
}
