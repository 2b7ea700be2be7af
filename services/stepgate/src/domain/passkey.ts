/** A calling service's web front end as a WebAuthn relying party: its RP id and the origins it serves. */
export interface RelyingParty {
  /** The RP id, a registrable domain of the origins, e.g. "payments.example.com". */
  id: string;
  /** The name authenticators show during registration, e.g. "Payments". */
  name: string;
  /** Every origin its pages run on, e.g. ["https://payments.example.com"]. */
  origins: readonly string[];
}

/** What a policy demands of a passkey (per action, or per enrolment). */
export interface PasskeyRequirement {
  /** The UV flag must be set: the authenticator checked a biometric or a PIN (WebAuthn 6.1). */
  userVerification: boolean;
  /** The credential must not be backup-eligible (BE flag clear): device-bound, as AAL3 needs. */
  deviceBound: boolean;
  /** The authenticator models (AAGUIDs, lowercase UUIDs) allowed; empty allows any. */
  aaguids?: readonly string[];
}

/**
 * A subject's active passkey as Verify needs it, safe to keep in the sealed factor cache and in a
 * challenge: the public key is public, the counter and flags are sealed with the rest.
 */
export interface PasskeyRecord {
  factorId: string;
  /** base64url, unique per relying party. */
  credentialId: string;
  /** The COSE_Key (RFC 9053), base64url. */
  publicKey: string;
  /** The signature counter last stored; 0 for authenticators that keep none. */
  counter: number;
  backupEligible: boolean;
  /** The authenticator model, a lowercase UUID (all zeros when the authenticator does not say). */
  aaguid: string;
  rpId: string;
  /** The authenticator's transports as it reported them at registration, e.g. ["internal", "hybrid"]. */
  transports: string[];
}
