/** Every migration by name, in order (store/database.ts pairs each with its class). */
export const migrationNames = [
  "001-initial",
  "002-service-secrets",
  "003-audit-event-ids",
  "004-subject-versions",
  "005-signing-key-lifecycle",
  "006-reseal-progress",
  "007-enrolment-authorization",
  "008-passkeys",
  "009-revocation-feed",
] as const;

/** The migrations table (store/database.ts). */
export const migrationsTable = "stepgate_migrations";
