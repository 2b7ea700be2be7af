import { Migration } from "@mikro-orm/migrations";

/**
 * Passkeys (WebAuthn): a factor of method `passkey` and its credential. A pending enrolment is a
 * factor row alone; finishing it adds the credential, whose id is unique per relying party
 * (WebAuthn 6.1: credential ids are chosen by authenticators, so two RPs may see the same one).
 * `cloned_at` marks a credential whose signature counter went backwards: it no longer answers.
 */
export class Migration008Passkeys extends Migration {
  override name = "008-passkeys";

  override up(): void {
    this.addSql("alter table factors drop constraint factors_method_check");
    this.addSql(
      "alter table factors add constraint factors_method_check check (method in ('totp', 'recovery_code', 'passkey'))",
    );
    this.addSql(`create table passkey_credentials (
      factor_id uuid primary key references factors (id) on delete cascade,
      rp_id text not null,
      credential_id text not null,
      public_key bytea not null,
      sign_count bigint not null,
      backup_eligible boolean not null,
      aaguid text not null,
      transports text[] not null,
      attestation_format text not null,
      last_claim text null,
      cloned_at timestamptz null,
      unique (rp_id, credential_id)
    )`);
  }

  override down(): void {
    this.addSql("drop table passkey_credentials");
    this.addSql("delete from factors where method = 'passkey'");
    this.addSql("alter table factors drop constraint factors_method_check");
    this.addSql(
      "alter table factors add constraint factors_method_check check (method in ('totp', 'recovery_code'))",
    );
  }
}
