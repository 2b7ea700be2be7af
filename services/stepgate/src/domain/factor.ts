import type { MethodName } from "./method.ts";
import type { PasskeyRecord } from "./passkey.ts";

/** A second factor as the service sees it: a TOTP authenticator, a set of recovery codes or a passkey. */
export interface Factor {
  id: string;
  subject: string;
  method: MethodName;
  status: "pending" | "active";
  label: string;
  /** The TOTP secret, sealed with the key ring and bound to the factor (null for recovery codes). */
  secret: Buffer | null;
  /** Salt of the recovery code hashes (null for TOTP). */
  recoverySalt: Buffer | null;
  createdAt: Date;
  /** Until when a pending enrolment may be confirmed. */
  confirmBy: Date | null;
  lastUsedAt: Date | null;
  /** Unused recovery codes (0 for TOTP). */
  recoveryCodesRemaining: number;
  /** What authorised a pending enrolment; undefined for active factors and older pending rows. */
  authorizedBy?: ChangeAuthorization | undefined;
  /** A passkey whose signature counter went backwards (a cloned authenticator): it no longer answers. */
  flagged?: boolean;
}

/**
 * What let a factor change through (factors/authorize-change.ts): a first factor's fresh sign-in,
 * while the subject had no active factor, or a management grant (its id, session and the factor
 * that produced it), whose revocation ends what it authorised.
 */
export type ChangeAuthorization =
  | { kind: "first_factor" }
  | { kind: "grant"; grantId: string; sessionId: string; factorId?: string };

/** What a subject can answer a challenge with: methods with a usable factor, their TOTP secrets and passkeys. */
export interface Enrolled {
  methods: Set<MethodName>;
  totp: { id: string; sealed: string }[];
  /** Active, unflagged passkeys of every relying party. */
  passkeys: PasskeyRecord[];
  /** The subject's factor version this was read at (0 before any change). */
  version: number;
}
