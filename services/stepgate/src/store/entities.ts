import { defineEntity, type InferEntity, p } from "@mikro-orm/core";

/** A second factor: a TOTP authenticator or a set of recovery codes. */
export const FactorEntity = defineEntity({
  name: "Factor",
  tableName: "factors",
  properties: {
    id: p.uuid().primary(),
    subject: p.text().index(),
    method: p.text(),
    status: p.text(),
    label: p.text(),
    /** The TOTP secret, sealed with the key ring and bound to this row. */
    secret: p.type("blob").columnType("bytea").nullable(),
    keyId: p.text().nullable(),
    /** The last accepted TOTP time step: a code is accepted once (RFC 6238 5.2). */
    lastStep: p.bigint("number").nullable(),
    /** Who claimed the last step (challenge and idempotency key), so a retry of that call succeeds. */
    lastClaim: p.text().nullable(),
    /** Salt of the recovery code hashes. */
    recoverySalt: p.type("blob").columnType("bytea").nullable(),
    createdAt: p.datetime(),
    confirmBy: p.datetime().nullable(),
    confirmedAt: p.datetime().nullable(),
    lastUsedAt: p.datetime().nullable(),
    /** What authorised a pending enrolment (JSON `ChangeAuthorization`); checked again at confirmation. */
    authorizedBy: p.text().nullable(),
  },
});
export type Factor = InferEntity<typeof FactorEntity>;

/** One recovery code, stored only as a salted scrypt hash. */
export const RecoveryCodeEntity = defineEntity({
  name: "RecoveryCode",
  tableName: "recovery_codes",
  properties: {
    id: p.uuid().primary(),
    factorId: p.uuid().index(),
    codeHash: p.type("blob").columnType("bytea"),
    usedAt: p.datetime().nullable(),
    usedClaim: p.text().nullable(),
  },
});
export type RecoveryCode = InferEntity<typeof RecoveryCodeEntity>;

/** An Ed25519 key that signs grants; the private half is sealed with the key ring. */
export const SigningKeyEntity = defineEntity({
  name: "SigningKey",
  tableName: "signing_keys",
  properties: {
    kid: p.text().primary(),
    publicJwk: p.json<Record<string, string>>(),
    privateKey: p.type("blob").columnType("bytea"),
    keyId: p.text(),
    active: p.boolean(),
    createdAt: p.datetime(),
  },
});
export type SigningKey = InferEntity<typeof SigningKeyEntity>;

/** An append-only record of a security-relevant event. */
export const AuditEventEntity = defineEntity({
  name: "AuditEvent",
  tableName: "audit_events",
  properties: {
    id: p.bigint("number").primary().autoincrement(),
    /** The id the event got when recorded (null on rows from before migration 003): stored once. */
    eventId: p.text().nullable().unique(),
    at: p.datetime(),
    type: p.text(),
    subject: p.text().nullable(),
    caller: p.text().nullable(),
    replica: p.text().nullable(),
    details: p.json<Record<string, unknown>>(),
  },
});
export type AuditEvent = InferEntity<typeof AuditEventEntity>;

/** Short-lived hot state (challenges, counters, elevations) when no Redis is configured. */
export const HotEntryEntity = defineEntity({
  name: "HotEntry",
  tableName: "hot_entries",
  properties: {
    key: p.text().primary(),
    value: p.text().nullable(),
    counter: p.bigint("number"),
    expiresAt: p.datetime().index(),
  },
});

/** A secret the fleet shares (e.g. the fingerprint key), sealed with the key ring and bound to its name. */
export const ServiceSecretEntity = defineEntity({
  name: "ServiceSecret",
  tableName: "service_secrets",
  properties: {
    name: p.text().primary(),
    sealed: p.type("blob").columnType("bytea"),
    keyId: p.text(),
    createdAt: p.datetime(),
  },
});

/** Raised by every change to a subject's active factors; cached factors carry the version they saw. */
export const SubjectVersionEntity = defineEntity({
  name: "SubjectVersion",
  tableName: "subject_versions",
  properties: {
    subject: p.text().primary(),
    version: p.bigint("number"),
    updatedAt: p.datetime().index(),
  },
});

/** How far the re-seal job got in one table of sealed values (keys/reseal.ts). */
export const ResealProgressEntity = defineEntity({
  name: "ResealProgress",
  tableName: "reseal_progress",
  properties: {
    target: p.text().primary(),
    keyId: p.text(),
    after: p.text().nullable(),
    complete: p.boolean(),
    resealed: p.bigint("number"),
    updatedAt: p.datetime(),
  },
});

export const entities = [
  FactorEntity,
  RecoveryCodeEntity,
  SigningKeyEntity,
  AuditEventEntity,
  HotEntryEntity,
  ServiceSecretEntity,
  SubjectVersionEntity,
  ResealProgressEntity,
];
