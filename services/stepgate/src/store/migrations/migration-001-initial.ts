import { Migration } from "@mikro-orm/migrations";

/** Factors, recovery codes, signing keys, audit events and the PostgreSQL hot state. */
export class Migration001Initial extends Migration {
  override name = "001-initial";

  override up(): void {
    this.addSql(`create table factors (
      id uuid primary key,
      subject text not null,
      method text not null check (method in ('totp', 'recovery_code')),
      status text not null check (status in ('pending', 'active')),
      label text not null,
      secret bytea null,
      key_id text null,
      last_step bigint null,
      last_claim text null,
      recovery_salt bytea null,
      created_at timestamptz not null,
      confirm_by timestamptz null,
      confirmed_at timestamptz null,
      last_used_at timestamptz null
    )`);
    this.addSql("create index factors_subject_index on factors (subject)");
    // One recovery code set per subject: creating a new set replaces the old one.
    this.addSql(
      "create unique index factors_one_recovery_set on factors (subject) where method = 'recovery_code'",
    );
    this.addSql(`create table recovery_codes (
      id uuid primary key,
      factor_id uuid not null references factors (id) on delete cascade,
      code_hash bytea not null,
      used_at timestamptz null,
      used_claim text null,
      unique (factor_id, code_hash)
    )`);
    this.addSql("create index recovery_codes_factor_id_index on recovery_codes (factor_id)");
    this.addSql(`create table signing_keys (
      kid text primary key,
      public_jwk jsonb not null,
      private_key bytea not null,
      key_id text not null,
      active boolean not null,
      created_at timestamptz not null
    )`);
    // At most one active key: replicas starting together race to insert it and one wins.
    this.addSql("create unique index signing_keys_one_active on signing_keys (active) where active");
    this.addSql(`create table audit_events (
      id bigserial primary key,
      at timestamptz not null,
      type text not null,
      subject text null,
      caller text null,
      replica text null,
      details jsonb not null
    )`);
    this.addSql("create index audit_events_subject_at_index on audit_events (subject, at)");
    this.addSql(`create table hot_entries (
      key text primary key,
      value text null,
      counter bigint not null default 0,
      expires_at timestamptz not null
    )`);
    this.addSql("create index hot_entries_expires_at_index on hot_entries (expires_at)");
  }

  override down(): void {
    this.addSql("drop table hot_entries, audit_events, signing_keys, recovery_codes, factors");
  }
}
