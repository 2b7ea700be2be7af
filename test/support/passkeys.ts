import assert from "node:assert/strict";
import type { StepgateClient } from "@stepgate/client";
import {
  type Ceremony,
  createSoftwareAuthenticator,
  type SoftwareAuthenticator,
  type SoftwareAuthenticatorOptions,
} from "@stepgate/testkit/software-authenticator";
import { newKey } from "./flows.ts";

/** The relying party of the passkey tests' default `webauthn` (callers without their own). */
export const localParty = { rpId: "localhost", origin: "http://localhost:8088" };
/** The `payments` caller's own relying party. */
export const paymentsParty = { rpId: "payments.example.com", origin: "https://payments.example.com" };

/** A policy with passkeys: per-caller relying parties, and actions that demand UV or a device-bound key. */
export const passkeyPolicy = `
levels: [aal1, aal2, aal3]
methods:
  totp: { acr: aal2, amr: [otp] }
  passkey: { acr: aal2, device_bound_acr: aal3 }
challenge: { ttl: 60, max_attempts: 5 }
lockout: { max_failures: 8, duration: 60 }
grant_ttl: 120
webauthn: { rp_id: localhost, rp_name: Stepgate tests, origins: ["${localParty.origin}"] }
actions:
  payments.transfer: { acr: aal2, max_age: 300, methods: [passkey, totp], passkey: { user_verification: required } }
  payments.high_value: { acr: aal3, max_age: 0, methods: [passkey] }
  account.view: { acr: aal2, max_age: 300, passkey: { device_bound: true } }
  stepgate.enroll_totp: { acr: aal2, max_age: 300 }
  stepgate.create_recovery_codes: { acr: aal2, max_age: 300 }
  stepgate.remove_factor: { acr: aal2, max_age: 300 }
callers:
  payments:
    actions: ["*"]
    factors: manage
    webauthn: { rp_id: ${paymentsParty.rpId}, rp_name: Payments, origins: ["${paymentsParty.origin}"] }
  accounts: { actions: ["*"], factors: manage }
`;

/** Where a browser page runs: the relying party and origin the software authenticator answers for. */
export type Party = { rpId: string; origin: string };

/** Begins an enrolment and returns the pending factor and the ceremony its options ask for. */
export async function beginPasskey(client: StepgateClient, subject: string, party: Party, grant = "") {
  const begun = await client.factors.beginPasskeyEnrollment({
    subject,
    label: "Laptop",
    userName: `${subject}@example.com`,
    grant,
  });
  const options = JSON.parse(begun.creationOptionsJson) as { challenge: string; rp: { id: string } };
  assert.equal(options.rp.id, party.rpId);
  const ceremony: Ceremony = { ...party, challenge: options.challenge };
  return { factorId: begun.factorId, ceremony, options };
}

/** Enrols a new software passkey for `subject` (`grant` authorises the enrolment); returns the authenticator and its factor id. */
export async function enrolPasskey(
  client: StepgateClient,
  subject: string,
  party: Party,
  options: SoftwareAuthenticatorOptions & { grant?: string; attestation?: "none" | "packed" } = {},
): Promise<{ authenticator: SoftwareAuthenticator; factorId: string }> {
  const authenticator = createSoftwareAuthenticator(options);
  const { factorId, ceremony } = await beginPasskey(client, subject, party, options.grant);
  await client.factors.finishPasskeyEnrollment({
    subject,
    factorId,
    attestationJson: JSON.stringify(authenticator.register(ceremony, options.attestation)),
  });
  return { authenticator, factorId };
}

/** StepUp for `action`, expecting a challenge that offers a passkey; returns it with the WebAuthn ceremony. */
export async function passkeyChallenge(
  client: StepgateClient,
  subject: string,
  sessionId: string,
  action: string,
  party: Party,
) {
  const res = await client.stepUp.stepUp({ subject, sessionId, action });
  assert.equal(res.outcome.case, "challenge", `expected a challenge, got ${res.outcome.case}`);
  const challenge = res.outcome.value;
  const options = JSON.parse(challenge.passkeyRequestOptionsJson) as {
    challenge: string;
    rpId: string;
    userVerification: string;
    allowCredentials: { id: string; type: string }[];
  };
  assert.equal(options.rpId, party.rpId);
  const ceremony: Ceremony = { ...party, challenge: options.challenge };
  // What Verify must name: the challenge and what it was issued for.
  const request = { challengeId: challenge.challengeId, subject, sessionId, action };
  return { challenge, options, ceremony, request };
}

/** Verify with a passkey's assertion JSON (the text the browser's toJSON gives, or any text). */
export function verifyPasskey(
  client: StepgateClient,
  request: { challengeId: string; subject: string; sessionId: string; action: string },
  assertionJson: string,
  idempotencyKey = newKey(),
) {
  return client.stepUp.verify({
    ...request,
    proof: { kind: { case: "passkeyAssertionJson", value: assertionJson } },
    idempotencyKey,
  });
}
