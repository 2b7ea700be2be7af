import { Migration } from "@mikro-orm/migrations";

/** Secrets the whole fleet shares and that must outlive a change of the active encryption key. */
export class Migration002ServiceSecrets extends Migration {
  override name = "002-service-secrets";

  override up(): void {
    this.addSql(`create table service_secrets (
      name text primary key,
      sealed bytea not null,
      key_id text not null,
      created_at timestamptz not null
    )`);
  }
}
