import type { HandlerContext } from "@connectrpc/connect";
import { peerCertificateKey } from "@stepgate/grpc-bridge";
import { certificateNames } from "./certificate-names.ts";

/** Who one client certificate names in the policy, by which of its names; or why it names nobody. */
export type Identification = { principal: string; peer: string } | { refusal: string };

/**
 * Maps a call's client certificate to the principal (a calling service, or an operator) the
 * policy's `peers` map it to: its SPIFFE IDs (typed URI names) and DNS names (typed dNSName names,
 * without case), read from the certificate's DER as `certificateNames` says. A certificate whose
 * names map to two principals, or whose DER cannot be read, names none. `noun` names what is
 * looked for in the refusals ("calling service", "operator").
 */
export function principalFromCertificate(
  peers: ReadonlyMap<string, string>,
  noun: string,
): (ctx: HandlerContext) => Identification {
  const identify = certificateIdentifier(peers, noun);
  // Certificates are few and calls many: the outcome is remembered per certificate fingerprint.
  const known = new Map<string, Identification>();
  return (ctx) => {
    const certificate = ctx.values.get(peerCertificateKey);
    if (!certificate) return { refusal: "a client certificate is required" };
    let identified = known.get(certificate.fingerprint256);
    if (identified === undefined) {
      identified = identify(certificate.raw);
      if (known.size >= 1024) known.clear();
      known.set(certificate.fingerprint256, identified);
    }
    return identified;
  };
}

/** Maps a certificate's DER to its principal: URI names against URI peers, DNS names against DNS peers. */
function certificateIdentifier(
  peers: ReadonlyMap<string, string>,
  noun: string,
): (der: Uint8Array) => Identification {
  // A DNS name has no colon and a URI always has one (after its scheme): the two kinds never mix.
  const uriPeers = new Map([...peers].filter(([peer]) => peer.includes(":")));
  const dnsPeers = new Map([...peers].filter(([peer]) => !peer.includes(":")));
  return (der) => {
    const names = certificateNames(der);
    if (!names) return { refusal: `the client certificate cannot be read; it names no ${noun}` };
    const found = new Map<string, string>();
    for (const uri of names.uris) addFound(found, uriPeers.get(uri), uri);
    for (const dns of names.dnsNames) addFound(found, dnsPeers.get(dns), dns);
    const [first, ...others] = found;
    if (first === undefined) return { refusal: `the client certificate names no ${noun} in the policy` };
    if (others.length > 0) {
      return { refusal: `the client certificate names more than one ${noun} in the policy; it is refused` };
    }
    return { principal: first[0], peer: first[1] };
  };
}

// The first name that mapped a principal is the one reported as its identity.
function addFound(found: Map<string, string>, principal: string | undefined, name: string): void {
  if (principal !== undefined && !found.has(principal)) found.set(principal, name);
}
